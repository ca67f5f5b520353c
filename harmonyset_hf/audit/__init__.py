"""Audits of the benchmark and its judge: MC answer bias, judge robustness, judge agreement."""

import warnings

from . import mc_bias


def __getattr__(name: str):
    """The names of 0.1.0's flat module ``harmonyset_hf.audit`` (now ``audit.mc_bias``), for one release."""
    if not name.startswith("_") and hasattr(mc_bias, name):
        warnings.warn(f"harmonyset_hf.audit.{name} moved to harmonyset_hf.audit.mc_bias.{name}; the old path goes "
                      "away in the next release", DeprecationWarning, stacklevel=2)
        return getattr(mc_bias, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
