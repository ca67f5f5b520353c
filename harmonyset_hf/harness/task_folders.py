"""Where the installed lm-eval and lmms-eval task folders are (package data, so they ship in the wheel)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError

# The name a user types -> the folder under harmonyset_hf/harness/task_configs/.
HARNESSES = {"lm-eval": "lm_eval", "lm_eval": "lm_eval", "lmms-eval": "lmms_eval", "lmms_eval": "lmms_eval"}


def task_folder(harness: str) -> Path:
    """The folder to pass as ``--include_path`` for ``harness`` ("lm-eval" or "lmms-eval")."""
    key = HARNESSES.get(harness.strip().lower())
    if key is None:
        raise ConfigError(f"unknown harness {harness!r}: choose lm-eval or lmms-eval")
    folder = resources.files(__package__) / "task_configs" / key
    # The harnesses walk a real directory; a wheel installs one, a zipped import would not.
    path = Path(str(folder))
    if not (path / "harmonyset").is_dir():
        raise ConfigError(f"the {harness} task folder is missing from this installation ({path}); "
                          "reinstall harmonyset-hf")
    return path
