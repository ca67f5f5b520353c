"""Install and packaging: the lock follows setup.py, the venv follows the lock, the tasks ship in the package.

The full clean-room run (wheel -> new venv -> a folder outside the checkout) is scripts/clean_room.py,
which `make test` runs after this suite.
"""

from __future__ import annotations

import ast
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import harmonyset_hf
from harmonyset_hf.cli import main as harmonyset_main
from harmonyset_hf.errors import ConfigError
from harmonyset_hf.harness.lm_eval_cli import with_task_folder
from harmonyset_hf.harness.task_folders import task_folder

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
# Installed by `make setup` from the lock, then removed again: their PyPI builds break imports here.
REMOVED_AFTER_INSTALL = {"torchvision", "timm"}


def _locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", LOCK.read_text(encoding="utf-8"), re.M)
    return {canonicalize_name(name): version for name, version in pins}


def _setup_requirements() -> list[Requirement]:
    """Every requirement in setup.py (install_requires and every extra), read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    lists: list[ast.List] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXTRAS" for t in node.targets):
            lists += [v for v in node.value.values if isinstance(v, ast.List)]
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            lists.append(node.value)
    return [Requirement(e.value) for lst in lists for e in lst.elts]


def test_lock_pins_every_requirement_of_setup_py_within_its_bounds():
    """A requirement added or tightened in setup.py without `make lock` fails here, before a fresh install does."""
    locked = _locked()
    requirements = _setup_requirements()
    assert len(requirements) >= 20, [str(r) for r in requirements]  # the parse found setup.py's lists
    for req in requirements:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} is in setup.py but not in requirements.lock: run `make lock`"
        version = Version(locked[name])
        assert req.specifier.contains(version, prereleases=True), f"lock pins {name}=={version}, setup.py asks {req}"


def test_lock_keeps_lmms_eval_working():
    """filelock 4.3 dropped `filelock._api`, which lmms-eval 0.7.3 imports: the lock and setup.py keep it below."""
    assert Version(_locked()["filelock"]) < Version("4.3")
    import filelock._api  # noqa: F401  (the import lmms-eval makes in every run)


def test_this_environment_is_the_lock():
    """`make setup` installed exactly the locked versions (a drifted venv would test something else)."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    drift = {name: (version, installed.get(name)) for name, version in _locked().items()
             if name not in REMOVED_AFTER_INSTALL | {"setuptools"} and installed.get(name) != version}
    assert not drift, f"installed versions differ from requirements.lock (locked, installed): {drift}"


def test_version_lives_in_one_place():
    """setup.py reads the version from the package; nothing else states it."""
    setup_text = (REPO / "setup.py").read_text(encoding="utf-8")
    assert harmonyset_hf.__version__ not in setup_text
    assert metadata.version("harmonyset-hf") == harmonyset_hf.__version__


def test_version_flag(capsys):
    """`harmonyset --version` prints the package version."""
    with pytest.raises(SystemExit) as exit_info:
        harmonyset_main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"harmonyset-hf {harmonyset_hf.__version__}"


@pytest.mark.parametrize("harness", ["lm-eval", "lmms-eval"])
def test_tasks_path_is_inside_the_package(harness, capsys):
    """`harmonyset tasks-path` names the task folder shipped in the package, with every task YAML."""
    assert harmonyset_main(["tasks-path", harness]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == task_folder(harness)
    assert Path(harmonyset_hf.__file__).parent in folder.parents
    names = {p.name for p in (folder / "harmonyset").iterdir()}
    assert {"harmonyset_mc.yaml", "harmonyset_oe.yaml", "harmonyset_pair.yaml", "utils.py"} <= names


def test_tasks_path_refuses_an_unknown_harness():
    """A typo is a one-line error, not a path to nowhere."""
    with pytest.raises(ConfigError, match="lm-eval or lmms-eval"):
        task_folder("vlmevalkit")


def test_harmonyset_lm_eval_adds_the_task_folder_only_when_none_is_given():
    """The launcher appends --include_path when the user gave none, under any spelling argparse accepts."""
    folder = str(task_folder("lm-eval"))
    assert with_task_folder(["--model", "m", "--tasks", "harmonyset_mc"])[-2:] == ["--include_path", folder]
    assert with_task_folder(["ls", "tasks"]) == ["ls", "tasks", "--include_path", folder]
    for given in (["--include_path", "x"], ["--include-path", "x"], ["--include_path=x"], ["--include", "x"]):
        assert with_task_folder(["--tasks", "t", *given]) == ["--tasks", "t", *given]
    assert with_task_folder([]) == [] and with_task_folder(["--help"]) == ["--help"]


def test_checkout_tasks_folder_is_the_packaged_one():
    """tasks/ at the root is a link to the packaged folders: one copy, two ways to reach it."""
    assert (REPO / "tasks").resolve() == task_folder("lm-eval").parent.resolve()


def test_card_template_is_package_data():
    """The card template is read from the package (a wheel has no checkout root)."""
    from harmonyset_hf.data.card import TEMPLATE

    assert Path(str(TEMPLATE)).is_relative_to(Path(harmonyset_hf.__file__).parent)
    assert "${configs_yaml}" in TEMPLATE.read_text(encoding="utf-8")
