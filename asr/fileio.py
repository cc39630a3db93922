"""Atomic file writes: a file that exists under its final name is complete.

Every output is written to a temporary file in its destination's folder,
flushed to disk (`fsync`), renamed over the destination (`os.replace`, atomic
within a file system) and the folder is synced so that the rename itself
survives a power cut. Temporary files are hidden and named

    .tmp-HOST-PID-TOKEN.NAME      e.g. .tmp-node1-4242-9f3c01aa.model.keras

so they keep the final name's suffixes (Keras insists on `.keras` and
`.weights.h5`), never match an output's name or glob, and say which process
wrote them. A process killed outright leaves its temporary behind;
`remove_stale_temporaries` deletes those of this host whose process is gone,
and those of other hosts (a shared folder) once they are a day old.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

_HOST = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-") or "host"
_TEMPORARY = re.compile(r"^\.tmp-(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-[0-9a-f]{8}\.")
FOREIGN_SECONDS = 24 * 3600  # no write takes this long
# A file name whose bytes are not UTF-8 reaches Python holding surrogates, which UTF-8 cannot
# encode; written as escapes (\udce9), which JSON reads back as the same name.
UNENCODABLE = "backslashreplace"


def temporary_path(path) -> Path:
    """A fresh temporary name beside `path`, in the scheme above."""
    path = Path(path)
    return path.with_name(f".tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.{path.name}")


def is_temporary(name: str) -> bool:
    return _TEMPORARY.match(name) is not None


@contextlib.contextmanager
def atomic_path(path, sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; when the block ends normally it replaces `path`.

    If the block raises (Ctrl-C included), the temporary is deleted and `path`
    is left as it was; an OSError that names no file (a full disk on write) is
    raised naming `path`. `sync=False` skips the fsyncs, for files whose loss
    after a power cut costs nothing but time (caches that check what they read).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        if sync:
            _sync(temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None:
            raise OSError(error.errno, error.strerror, os.fspath(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync:
        _sync_folder(path.parent)


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", sync: bool = True):
    """`open(path, mode)` on a temporary that replaces `path` when the block ends normally.

    Text modes use UTF-8, writing what it cannot encode as escapes (`UNENCODABLE`).
    """
    text = {} if "b" in mode else {"encoding": "utf-8", "errors": UNENCODABLE}
    with atomic_path(path, sync) as temporary, open(temporary, mode, **text) as file:
        yield file


def write_text(path, text: str, sync: bool = True) -> None:
    with atomic_open(path, "w", sync) as file:
        file.write(text)


def write_json(path, value, indent: int | None = 1) -> None:
    """`value` as JSON (UTF-8, non-ASCII kept), with a final newline."""
    write_text(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def sync_all() -> None:
    """Flush every file system's pending writes (os.sync), where the platform has it: one
    call makes many unsynced atomic writes durable at once, far cheaper than an fsync each."""
    if hasattr(os, "sync"):
        os.sync()


def remove_stale_temporaries(folder) -> int:
    """Delete temporaries below `folder` whose writer is gone; returns how many.

    A temporary of this host is stale when its process no longer runs; one of
    another host when it is older than FOREIGN_SECONDS.
    """
    removed = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            match = _TEMPORARY.match(name)
            if match and _stale(match, Path(parent, name)):
                Path(parent, name).unlink(missing_ok=True)
                removed += 1
    return removed


def _stale(match: re.Match, path: Path) -> bool:
    if match["host"] != _HOST:
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:  # its writer, on another host, renamed it since the walk
            return False
        return time.time() - modified > FOREIGN_SECONDS
    return not _running(int(match["pid"]))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:
        return False
    return True


def _sync(path: Path) -> None:
    """Flush a file's data to disk, so the rename after it never exposes unwritten data."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename); a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
