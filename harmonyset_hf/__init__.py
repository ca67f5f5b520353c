"""HarmonySet (video-music alignment) for `datasets`, `accelerate`, `lm_eval` and `lmms-eval`."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports (``harmonyset_hf.load``) so that importing the package stays light."""
    if name == "load":
        from .hub import load

        return load
    raise AttributeError(f"module 'harmonyset_hf' has no attribute {name!r}")
