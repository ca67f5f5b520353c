"""The package keeps its shape: no private cross-imports, no import cycles, a short top level (issue 14)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from layout_rules import cycles, function_level_imports, private_imports, scan, top_level_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harmonyset_hf"
MAX_TOP_LEVEL = 10
# Imports of our own modules that stay inside functions, each with a measured reason in a comment there.
LAZY_OUTSIDE_COMMANDS = {
    ("harmonyset_hf", "harmonyset_hf.data.hub"),
    ("harmonyset_hf.models.qwen2_5_omni", "harmonyset_hf.models.omni_processing"),
    ("harmonyset_hf.models.qwen2_5_omni", "harmonyset_hf.models.omni_prefix"),  # it imports omni_processing
    ("harmonyset_hf.models.tiny", "harmonyset_hf.models.omni_processing"),
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A synthetic package under ``root``; returns its directory."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


@pytest.fixture(scope="module")
def layout():
    return scan(PACKAGE)


def test_no_module_imports_another_modules_private_names(layout):
    """Underscore names only come from a private ``_x.py`` of the importer's own subpackage."""
    found = [f"{i.importer}:{i.lineno} takes {', '.join(i.private)} from {i.target}" for i in private_imports(layout)]
    assert found == []


def test_no_import_cycles_counting_imports_inside_functions(layout):
    """The import graph of the package (function-level imports included) has no cycle."""
    assert cycles(layout) == []


def test_the_top_level_stays_short(layout):
    """At most ~10 plain modules sit at the package's top level; everything else is in a subpackage."""
    top = top_level_modules(layout)
    assert len(top) <= MAX_TOP_LEVEL, top


def test_our_modules_are_imported_at_module_top(layout):
    """Function-level imports of our own modules only in commands/ (start-up) and the measured places."""
    lazy = {(i.importer, i.target) for i in function_level_imports(layout)
            if not i.importer.startswith("harmonyset_hf.commands.") and i.importer != "harmonyset_hf.commands"}
    assert lazy <= LAZY_OUTSIDE_COMMANDS, sorted(lazy - LAZY_OUTSIDE_COMMANDS)


def test_every_import_of_the_package_names_a_module_that_exists(layout):
    """No internal import goes through a deprecated alias (or a module that is gone)."""
    assert layout.unresolved == []


def test_the_checker_finds_each_kind_of_violation(tmp_path):
    """On a small bad tree: a private import, a private module of another subpackage, a cycle through a
    function-level import, a ``module._name`` read, and an unresolved import are all reported."""
    pkg = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import _hidden\nfrom . import c\n\n\ndef f():\n    return c._secret\n",
        "pkg/b.py": "def g():\n    from .a import f\n    return f\n\n\ndef _hidden():\n    pass\n",
        "pkg/c.py": "_secret = 1\n",
        "pkg/sub/__init__.py": "from ._impl import _fast, run\n",
        "pkg/sub/_impl.py": "def run():\n    pass\n\n\ndef _fast():\n    pass\n",
        "pkg/sub/user.py": "from ._impl import _fast\n",
        "pkg/other/__init__.py": "",
        "pkg/other/thief.py": "from ..sub._impl import run\nfrom ..sub import _impl\nimport pkg.gone\n",
    })
    bad = scan(pkg)
    private = {(i.importer, i.target, i.private) for i in private_imports(bad)}
    assert private == {
        ("pkg.a", "pkg.b", ("_hidden",)),
        ("pkg.a", "pkg.c", ("_secret",)),
        ("pkg.other.thief", "pkg.sub._impl", ("_impl",)),
    }
    assert cycles(bad) == [["pkg.a", "pkg.b"]]
    assert [(i.importer, i.target) for i in function_level_imports(bad)] == [("pkg.b", "pkg.a")]
    assert bad.unresolved == [("pkg.other.thief", 3, "pkg.gone")]


def test_the_checker_passes_a_good_tree_and_counts_its_top_level(tmp_path):
    """The same shapes done right report nothing; the top-level count skips __init__ and subpackages."""
    pkg = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import g\n",
        "pkg/b.py": "def g():\n    pass\n",
        "pkg/sub/__init__.py": "from ._impl import _fast, run\n",
        "pkg/sub/_impl.py": "def run():\n    pass\n\n\ndef _fast():\n    pass\n",
        "pkg/sub/user.py": "from . import _impl\nfrom ._impl import _fast\n",
        "pkg/other/__init__.py": "",
        "pkg/other/client.py": "from ..sub import run\n",
    })
    good = scan(pkg)
    assert private_imports(good) == [] and cycles(good) == [] and good.unresolved == []
    assert top_level_modules(good) == ["pkg.a", "pkg.b"]


def test_a_cycle_of_three_through_package_inits_is_found(tmp_path):
    """A cycle that passes through a subpackage's ``__init__`` re-export is still a cycle."""
    pkg = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/x/__init__.py": "from .core import run\n",
        "pkg/x/core.py": "from ..y.tool import helper\n\n\ndef run():\n    return helper\n",
        "pkg/y/__init__.py": "",
        "pkg/y/tool.py": "def helper():\n    from ..x import run\n    return run\n",
    })
    assert cycles(scan(pkg)) == [["pkg.x", "pkg.x.core", "pkg.y.tool"]]


@pytest.mark.parametrize(("old", "new", "name"), [
    ("harmonyset_hf.sample", "harmonyset_hf.mini.sample", "make_sample"),
    ("harmonyset_hf.media_dataset", "harmonyset_hf.media.dataset", "ClipDataset"),
    ("harmonyset_hf.scoring", "harmonyset_hf.evaluation.scoring", "parse_choice"),
    ("harmonyset_hf.hub", "harmonyset_hf.data.hub", "build_hub"),
])
def test_a_moved_documented_path_still_imports_with_a_deprecation_warning(old, new, name):
    """``from harmonyset_hf.<old module> import X`` gives the same object as the new path, and warns once."""
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == [
        f"{old} moved to {new}; the old path goes away in the next release"]


def test_the_old_audit_module_names_still_resolve_with_a_deprecation_warning():
    """0.1.0's README showed ``audit.audit_mc(rows, ...)``: ``audit`` is a package now and forwards its names."""
    import harmonyset_hf.audit as audit
    from harmonyset_hf.audit import mc_bias

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert audit.audit_mc is mc_bias.audit_mc
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == [
        "harmonyset_hf.audit.audit_mc moved to harmonyset_hf.audit.mc_bias.audit_mc; the old path goes away in "
        "the next release"]
    with pytest.raises(AttributeError):
        audit.no_such_name  # noqa: B018


def test_documented_paths_that_did_not_move_import_without_warnings():
    """``harmonyset_hf.load``, ``media.load_clip``, ``sync.analyze``, ``judge.make_judge`` need no alias."""
    # Only our own deprecation is an error: third-party imports may warn about themselves.
    code = ("import warnings; warnings.filterwarnings('error', message='harmonyset_hf.* moved to')\n"
            "import harmonyset_hf\n"
            "from harmonyset_hf.media import load_clip, load_frames_at_fps, probe, sample_frame_indices\n"
            "from harmonyset_hf.sync import analyze\n"
            "from harmonyset_hf.judge import make_judge\n"
            "from harmonyset_hf.llm import LLMClient\n"
            "from harmonyset_hf.evaluation import evaluate_mc\n"
            "from harmonyset_hf.train import train\n"
            "assert callable(harmonyset_hf.load)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)


def test_python_m_harmonyset_hf_train_still_runs():
    """``python -m harmonyset_hf.train`` (what accelerate launch runs) reaches the training entry point."""
    out = subprocess.run([sys.executable, "-m", "harmonyset_hf.train", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0 and "--config" in out.stdout and "harmonyset_hf.train" in out.stdout


def test_the_layout_table_names_every_subpackage_and_top_level_module():
    """Each folder of the package and each top-level module appears in the README's (or docs') layout table."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))])
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() or p.name == "prompts")
    modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    missing = [f"{name}/" for name in folders if f"`{name}/`" not in text]
    missing += [name for name in modules if f"`{name}`" not in text and f"`harmonyset_hf/{name}`" not in text]
    assert missing == []
