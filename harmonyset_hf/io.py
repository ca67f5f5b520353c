"""Small file helpers shared by every module: atomic writes, JSON Lines, and secret masking.

Every text this module writes goes through :func:`mask_secrets` first, so a secret the process
holds (an API key from the environment or a flag, the Hugging Face token) never reaches a file,
with or without its ``sk-``/``hf_`` prefix; the CLI's log handlers use the same function.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import HarmonySetError


class OutputIsFolderError(HarmonySetError, IsADirectoryError):
    """An output file path that names an existing folder (still an IsADirectoryError for callers)."""


class OutputIsFileError(HarmonySetError, NotADirectoryError):
    """An output folder path that names an existing file (still a NotADirectoryError for callers)."""


def check_folder_path(path: str | os.PathLike) -> Path:
    """``path`` if it can be (or is) a folder; :class:`OutputIsFileError` when it, or a parent, is a file."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == path else f"lies under {folder}, which is a file"
                raise OutputIsFileError(f"{path} {what}; give a folder path for the output (nothing was written)")
            break
    return path


def ensure_folder(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents); :class:`OutputIsFileError` when it, or a parent, is a file."""
    path = check_folder_path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    """The process's umask, read from /proc (setting it to read it back would race other threads); else 022."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _file_mode(path: Path) -> int:
    """The permissions a file written in place would have: the replaced file's, else 666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never half; the file
    gets the permissions a plain write would give it (the temp file behind it is private to the writer)."""
    path = Path(path)
    if path.is_dir():  # e.g. `--out x` where x is a folder: say so, not os.replace's errno text
        raise OutputIsFolderError(f"{path} is a folder; give the path of the file to write")
    ensure_folder(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode(path))
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
    """Atomically write UTF-8 text (secrets masked)."""
    return atomic_write_bytes(path, mask_secrets(text).encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write an object as JSON (UTF-8, keys in insertion order)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


class MissingInputFileError(HarmonySetError, FileNotFoundError):
    """An input file that does not exist (still a FileNotFoundError for callers that catch one)."""


class InvalidJSONLError(HarmonySetError, ValueError):
    """A JSON Lines file with a bad line before its last (still a ValueError for callers that catch one)."""


def _torn_record(line: str | bytes) -> bool:
    """Whether a bad last line can be a record torn by a killed writer: records are JSON objects, so it starts '{'.

    Anything else (a one-line note, the wrong file) is not ours to skip or cut off.
    """
    return line.lstrip()[:1] in ("{", b"{")


def read_jsonl(path: str | os.PathLike, tolerate_partial_last_line: bool = True) -> Iterator[dict]:
    """Objects of a JSON Lines file; a torn last record (a killed writer) is skipped, not fatal."""
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
            if tolerate_partial_last_line and number == len(lines) and _torn_record(line):
                return
            raise InvalidJSONLError(f"{path}:{number}: not valid JSON ({err.msg})") from None


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Append records to a JSON Lines file, flushed and fsynced, so a crash loses at most one line."""
    path = Path(path)
    ensure_folder(path.parent)
    needs_newline = _drop_torn_tail(path)
    count = 0
    with path.open("a", encoding="utf-8") as fh:
        if needs_newline:
            fh.write("\n")
        for rec in records:
            fh.write(mask_secrets(json.dumps(rec, ensure_ascii=False)) + "\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    return count


def _drop_torn_tail(path: Path) -> bool:
    """Cut a torn last record (a writer killed mid-line) off ``path``; True when a whole last line lacks its newline.

    The torn line was never a record. Left in place, the lines appended after it would bury it in the
    middle of the file, where readers refuse it as bad JSON. A complete record without a newline
    (a hand-written file) is kept, and a last line that cannot be a torn record (it does not start
    with ``{``) is refused with :class:`InvalidJSONLError`: this function never deletes what it did
    not write.
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
            if not _torn_record(data[start:]):
                raise InvalidJSONLError(f"{path}: its last line is not a JSON record (nor one cut short); not "
                                        "appending to a file this tool did not write: give another path") from None
            fh.truncate(start)
            return False


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this machine (for telling stale lock and temp files)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where that cannot be read.

    A pid and its start time name one process: a pid recorded in a lock that now starts at another time was
    reused by a new process, and the lock's holder is gone.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text(encoding="ascii", errors="replace")
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22; the name in parentheses may hold spaces
    except (OSError, ValueError, IndexError):
        return None


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


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------
# Environment variables whose values are secrets: API keys and tokens, whatever the prefix.
SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY")
SECRET_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY")
# Prefixes a key may be echoed without ("sk-abc123..." also shows up as "abc123...").
SECRET_PREFIXES = ("sk-proj-", "sk-ant-", "sk-", "hf_")
MIN_SECRET_CHARS = 8  # shorter values ("1", "true") are settings, not secrets, and masking them would garble text
NOT_SECRETS = frozenset({"not-needed", "EMPTY", "none", "None", "null", "dummy"})
MASK = "***"
_registered: set[str] = set()
_token_files: dict[tuple[str, float], str | None] = {}


def register_secret(value: str | None) -> None:
    """Mask ``value`` (e.g. a key given as a flag) in everything this process writes or logs from now on."""
    if value and value.strip():
        _registered.add(value.strip())


def _hf_token_file() -> str | None:
    """The Hugging Face token saved by `hf auth login`, read where huggingface_hub keeps it (cached per mtime)."""
    path = os.environ.get("HF_TOKEN_PATH") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "token")
    try:
        key = (path, os.stat(path).st_mtime)
    except OSError:
        return None
    if key not in _token_files:
        try:
            with open(path, encoding="utf-8") as fh:
                _token_files[key] = fh.read(4096).strip() or None
        except (OSError, UnicodeDecodeError):
            _token_files[key] = None
    return _token_files[key]


def process_secrets() -> list[str]:
    """Every secret this process holds, and each without its known prefix, longest first."""
    values = set(_registered)
    for name, value in os.environ.items():
        if name in SECRET_ENV_NAMES or name.upper().endswith(SECRET_ENV_SUFFIXES):
            values.add(value.strip())
    token = _hf_token_file()
    if token:
        values.add(token)
    out = set()
    for value in values:
        forms = {value}
        for prefix in SECRET_PREFIXES:
            if value.startswith(prefix):
                forms.add(value[len(prefix):])
        out |= {f for f in forms if len(f) >= MIN_SECRET_CHARS and f not in NOT_SECRETS}
    return sorted(out, key=len, reverse=True)


def mask_secrets(text: str, extra: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with every secret of the process (and ``extra``), with or without its prefix, replaced by ``***``."""
    if not text:
        return text
    secrets = process_secrets()
    if extra:
        secrets = sorted({*secrets, *(e for e in extra if e and len(e) >= 4)}, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretMaskingFilter(logging.Filter):
    """A logging filter that masks the process's secrets in every record's message (and its traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets masked; never drops a record."""
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add :class:`SecretMaskingFilter` to every handler of ``logger`` (the root logger by default), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, SecretMaskingFilter) for f in handler.filters):
            handler.addFilter(SecretMaskingFilter())
