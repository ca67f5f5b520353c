"""Small file helpers shared by every module: atomic writes and JSON Lines."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import HarmonySetError


class OutputIsFolderError(HarmonySetError, IsADirectoryError):
    """An output file path that names an existing folder (still an IsADirectoryError for callers)."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    if path.is_dir():  # e.g. `--out x` where x is a folder: say so, not os.replace's errno text
        raise OutputIsFolderError(f"{path} is a folder; give the path of the file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write an object as JSON (UTF-8, keys in insertion order)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


class MissingInputFileError(HarmonySetError, FileNotFoundError):
    """An input file that does not exist (still a FileNotFoundError for callers that catch one)."""


class InvalidJSONLError(HarmonySetError, ValueError):
    """A JSON Lines file with a bad line before its last (still a ValueError for callers that catch one)."""


def read_jsonl(path: str | os.PathLike, tolerate_partial_last_line: bool = True) -> Iterator[dict]:
    """Objects of a JSON Lines file; a torn last line (a killed writer) is skipped, not fatal."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise MissingInputFileError(f"{path}: no such file") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as err:
            if tolerate_partial_last_line and number == len(lines):
                return
            raise InvalidJSONLError(f"{path}:{number}: not valid JSON ({err.msg})") from None


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Append records to a JSON Lines file, flushed and fsynced, so a crash loses at most one line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    needs_newline = _drop_torn_tail(path)
    count = 0
    with path.open("a", encoding="utf-8") as fh:
        if needs_newline:
            fh.write("\n")
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    return count


def _drop_torn_tail(path: Path) -> bool:
    """Cut a torn last line (a writer killed mid-line) off ``path``; True when a whole last line lacks its newline.

    The torn line was never a record. Left in place, the lines appended after it would bury it in the
    middle of the file, where readers refuse it as bad JSON. A complete record without a newline
    (a hand-written file) is kept.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return False
        fh.seek(0)
        data = fh.read()
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
            return True
        except ValueError:  # JSONDecodeError or undecodable bytes
            fh.truncate(start)
            return False


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    """Atomically write a whole JSON Lines file."""
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def package_versions() -> dict[str, str]:
    """Versions of this package and the libraries whose behaviour a result depends on."""
    from importlib import metadata

    out = {}
    for name in ("harmonyset-hf", "datasets", "torch", "transformers", "av", "openai", "lm-eval", "lmms-eval"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
