"""HarmonySet (video-music alignment) for `datasets`, `accelerate`, `lm_eval` and `lmms-eval`."""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# Flat modules of 0.1.0 that moved into subpackages (issue 14). Their old import paths keep working for
# one release, with a DeprecationWarning; names that are now a subpackage (media, llm, judge, evaluation,
# sync, train) need no alias: the subpackage exports what the old module did.
MOVED_MODULES = {
    "release": "data.release", "release_fields": "data.release_fields", "hub": "data.hub", "card": "data.card",
    "media_io": "media._av", "media_backends": "media.backends", "media_dataset": "media.dataset",
    "sample": "mini.sample", "sample_media": "mini.render", "sample_text": "mini.annotations",
    "sample_words": "mini.words", "media_synth": "mini.indexed_clip",
    "judge_guard": "judge.guard", "scoring": "evaluation.scoring", "predict": "evaluation.predict",
    "report": "evaluation.report", "train_config": "train.config", "collate": "train.collate",
    "sync_eval": "sync.evaluate", "pair": "sync.swap",
    "audit_judge": "audit.judge_robustness", "audit_agreement": "audit.agreement",
}


def _moved(old: str):
    new = f"{__name__}.{MOVED_MODULES[old]}"
    warnings.warn(f"{__name__}.{old} moved to {new}; the old path goes away in the next release",
                  DeprecationWarning, stacklevel=3)
    return importlib.import_module(new)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``import harmonyset_hf.<old module>`` to the module at its new place (one module object)."""

    def find_spec(self, fullname, path, target=None):
        package, _, old = fullname.rpartition(".")
        if package == __name__ and old in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return _moved(spec.name.rpartition(".")[2])

    def exec_module(self, module) -> None:
        """Nothing to run: the module at the new place is already imported."""


# First on the path: these names are aliases now, whatever else is installed (an editable install of an
# older checkout would otherwise serve its stale flat module under the old name).
if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())


def __getattr__(name: str):
    """Lazy exports (``harmonyset_hf.load``) so that importing the package stays light."""
    if name == "load":
        # Lazy: every console script imports this package first; it takes 14 ms, data.hub would add ~240 ms
        # (python -X importtime -c "import harmonyset_hf.data.hub").
        from .data.hub import load

        return load
    if name in MOVED_MODULES:
        return _moved(name)
    raise AttributeError(f"module 'harmonyset_hf' has no attribute {name!r}")
