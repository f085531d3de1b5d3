"""Writing files safely: atomic writes and an exclusive lock per run directory.

- :func:`atomic_write` writes to a unique temporary file in the target's directory, fsyncs it,
  renames it over the target (``os.replace`` is atomic on POSIX) and fsyncs the directory, so
  the target is always either the old or the new complete file, even after a crash or a full
  disk. The temporary file is removed on any failure; an ``OSError`` becomes a
  :class:`DwrError` naming the path.
- :func:`run_lock` holds an exclusive ``fcntl.flock`` on ``DIR/.lock`` (the file holds the
  holder's pid) while a run writes into ``DIR``. The kernel drops the lock when its holder
  dies, so a lock left by a killed run is simply taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from dwr.errors import DwrError, RunInUseError

#: The lock file inside a run directory.
LOCK_NAME = ".lock"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The mode ``open()`` would create files with: 0666 less the process's umask.
_CREATE_MODE = 0o666 & ~_umask()

_held: dict[str, int] = {}  # lock path -> fd of the locks this process holds (re-entry)


def describe_os_error(exc: OSError) -> str:
    """``strerror`` with a hint for the usual causes (full disk, permissions)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += "; free some space or choose another location"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += "; choose a location you can write to"
    return reason


def _write_all(f: BinaryIO, data: bytes) -> None:
    f.write(data)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening a directory; the rename stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], None]) -> None:
    """Replace ``path`` atomically with ``data`` (bytes, text as UTF-8, or a callable that
    writes to a binary file). Creates missing parent directories.

    Raises :class:`DwrError` naming ``path`` if it cannot be written; the previous file, if
    any, is left untouched and no temporary file remains.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a directory", str(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _CREATE_MODE)  # mkstemp makes 0600; a written file reads like open()'s
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise DwrError(f"cannot write {path}: {describe_os_error(exc)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write` of a string (UTF-8)."""
    atomic_write(path, text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """:func:`atomic_write` of ``obj`` as JSON with a trailing newline."""
    atomic_write(path, json.dumps(obj, indent=indent) + "\n")


def check_writable_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work starts, an output directory that cannot be created or written:
    an existing file, a path under a file, a read-only or unwritable location."""
    if not str(path).strip():
        raise DwrError(f"{what} is empty; give a directory")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DwrError(f"{what} {p} exists and is not a directory; choose another {what}")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DwrError(f"cannot create {what} directory {p}: {describe_os_error(exc)}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise DwrError(f"{what} directory {p} is not writable; choose another {what}")
    return p


def check_writable_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work starts, an output file path that cannot be written: a
    directory, a path under a file, an unwritable directory."""
    p = Path(path)
    if p.is_dir():
        raise DwrError(f"{what} {p} is a directory; give a file name")
    check_writable_dir(p.parent if str(p.parent) else Path("."), f"the directory of {what}")
    return p


def _is_secondary_rank() -> bool:
    """True in the non-zero ranks of a distributed run, which share rank 0's directory."""
    return any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "an unknown process"


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _acquire(d: Path, lock_path: Path) -> int:
    """Open and flock ``lock_path``; retry if it was unlinked between the open and the lock."""
    for _ in range(10):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DwrError(
                f"cannot create the lock {lock_path}: {describe_os_error(exc)}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunInUseError(
                    f"{d} is in use by another dwr process ({_holder(lock_path)}); wait for it "
                    "to finish or choose another --out"
                ) from None
            raise DwrError(f"cannot lock {lock_path}: {describe_os_error(exc)}") from None
        try:
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file that was just removed: try the new one
    raise DwrError(f"cannot lock {lock_path}: it keeps being replaced")


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (created if missing) for the ``with`` block.

    A second process asking for the same lock gets a :class:`DwrError` naming the holder's
    pid. The same process may re-enter its own lock. Non-zero ranks of a distributed run
    skip the lock (rank 0 holds it for them). A directory this call created and in which
    nothing was written (the run failed on bad input) is removed again. The lock file itself
    stays: deleting it would let a waiting process lock a file that no longer has a name.
    """
    created = _missing_dirs(Path(directory))
    d = check_writable_dir(directory)
    lock_path = d / name
    key = str(lock_path.resolve())
    if key in _held or _is_secondary_rank():
        yield lock_path
        return
    fd = _acquire(d, lock_path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # the lock holds without the pid; only the message would lack it
    _held[key] = fd
    try:
        yield lock_path
    finally:
        del _held[key]
        if created and [p.name for p in d.iterdir()] == [name]:  # bad input: nothing written
            with contextlib.suppress(OSError):
                lock_path.unlink()  # while still locked, so no one can hold the old file
                for c in created:  # deepest first; stops at the first that is not empty
                    c.rmdir()
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
