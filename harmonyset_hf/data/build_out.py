"""Where a build may write: the one rule that decides whether an output folder can be replaced.

`harmonyset build --out DIR` and `harmonyset derive swap --out DIR` replace DIR as a whole (so
readers never see half a folder). That is only safe for a folder this tool made, so every such
folder carries a marker file, and a folder is replaced only when

* it does not exist, or is an empty folder;
* or it carries the marker (:data:`MARKER`) of an earlier build;
* or it is a build made before the marker existed: a ``build_report.json`` (``derive_report.json``)
  with the keys a build writes and nothing at the top level but what a build writes
  (:data:`BUILD_ENTRIES`);

and never when it is, or holds, one of the inputs (the release folder or file, the videos
folder, the source Hub folder), nor when it is the current folder or one above it. Temporary
folders of a build killed with ``kill -9`` (``.NAME.building-PID``, ``.NAME.old-PID``) are removed
by the next build of the same output when their process is gone and they carry the marker.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from .. import __version__
from ..errors import HarmonySetError
from ..io import pid_alive

log = logging.getLogger(__name__)

MARKER = ".harmonyset-build"
# What a build writes at the top of its folder (the card adds figures/); anything else is the user's.
BUILD_ENTRIES = frozenset({MARKER, "README.md", "build_report.json", "instruct.parquet", "oe.parquet",
                           "mc.parquet", "data", "videos", "figures", "derive_report.json", "pair.parquet"})
REPORTS = ("build_report.json", "derive_report.json")
TEMP_KINDS = ("building", "deriving", "old")


class OutputFolderError(HarmonySetError):
    """An output folder that a build refuses to replace (it is not an earlier build, or holds an input)."""


def write_marker(folder: Path) -> None:
    """Mark ``folder`` as made by a harmonyset build (the only folders a later build may replace)."""
    info = {"tool": "harmonyset-hf", "version": __version__, "pid": os.getpid(), "created": time.time()}
    (folder / MARKER).write_text(json.dumps(info) + "\n", encoding="utf-8")


def has_marker(folder: Path) -> bool:
    """True when ``folder`` carries the marker of a build."""
    return (folder / MARKER).is_file()


def is_legacy_build(folder: Path) -> bool:
    """True for a build made before the marker existed: its report, and nothing a build would not write."""
    for name in REPORTS:
        try:
            report = json.loads((folder / name).read_text(encoding="utf-8"))
            names = {p.name for p in folder.iterdir()}
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and "versions" in report and names <= BUILD_ENTRIES:
            return True
    return False


def _contains(outer: Path, inner: Path) -> bool:
    """True when ``inner`` is ``outer`` or lies below it (both already resolved)."""
    return inner == outer or outer in inner.parents


def check_output_folder(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> Path:
    """The resolved output folder, or :class:`OutputFolderError` saying why it may not be replaced.

    ``inputs`` names each input path (e.g. ``{"release": ..., "videos": ...}``; None entries are
    ignored). Paths are compared after resolving symlinks.
    """
    given = str(out)
    target = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if _contains(target, cwd):
        where = "the current folder" if target == cwd else "a folder above the current one"
        raise OutputFolderError(f"--out {given} is {where}; a build replaces its output folder as a whole, "
                                "so give a new folder (e.g. --out HarmonySet)")
    for role, path in inputs.items():
        if path is None:
            continue
        source = Path(path).resolve()
        if _contains(target, source):
            what = "is" if target == source else "holds"
            raise OutputFolderError(f"--out {given} {what} the {role} input {path}; a build replaces its output "
                                    "folder as a whole: give another folder")
    if not os.path.lexists(target):
        return target
    if target.is_symlink() or not target.is_dir():
        raise OutputFolderError(f"--out {given} exists and is not a folder; remove it yourself or give another path")
    if has_marker(target) or is_legacy_build(target) or not any(target.iterdir()):
        return target
    raise OutputFolderError(f"--out {given} exists and is not an earlier build (no {MARKER} marker): nothing is "
                            "replaced; remove it yourself or give another folder")


def temp_folder(out: Path, kind: str, pid: int | None = None) -> Path:
    """The sibling folder a build of ``out`` works in (``building``) or parks the old build in (``old``)."""
    return out.parent / f".{out.name}.{kind}-{os.getpid() if pid is None else pid}"


def prepare_output_folder(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None],
                          kind: str = "building") -> tuple[Path, Path]:
    """(the checked output folder, a new marked temp folder beside it to build in); see the module's rule."""
    target = check_output_folder(out, inputs)
    clean_stale_temps(target)
    tmp = temp_folder(target, kind)
    if os.path.lexists(tmp):  # an earlier run in this process (or a reused pid): only a marked one is ours
        if not has_marker(tmp):
            raise OutputFolderError(f"{tmp} exists and is not a build's temp folder (no {MARKER}); remove it yourself")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_marker(tmp)  # first, so that a build killed from here on leaves a folder the next build may clean
    return target, tmp


def replace_output_folder(tmp: Path, out: Path) -> None:
    """Put the finished ``tmp`` in place of ``out`` with renames, so readers never see a half-built folder."""
    old = temp_folder(out, "old")
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)  # checked by prepare_output_folder: an earlier build, or empty


def clean_stale_temps(out: Path) -> list[Path]:
    """Remove the temp folders of killed builds of ``out``: only marked ones whose process is gone."""
    removed = []
    if not out.parent.is_dir():
        return removed
    for kind in TEMP_KINDS:
        prefix = f".{out.name}.{kind}-"
        for path in out.parent.glob(f"{prefix}*"):
            pid_text = path.name[len(prefix):]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or not path.is_dir() or path.is_symlink():
                continue
            if pid_alive(int(pid_text)):
                continue
            if not has_marker(path):
                log.warning("left %s in place: it looks like a killed build's temp folder but carries no %s "
                            "marker; remove it yourself if it is not needed", path, MARKER)
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d temp folder(s) of killed builds: %s", len(removed), ", ".join(p.name for p in removed))
    return removed
