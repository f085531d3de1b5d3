"""Writing files safely: atomic writes and an exclusive lock per run directory.

- :func:`atomic_write` writes to a unique temporary file in the target's directory, fsyncs it,
  renames it over the target (``os.replace`` is atomic on POSIX) and fsyncs the directory, so
  the target is always either the old or the new complete file, even after a crash or a full
  disk. The temporary file is removed on any failure; an ``OSError`` becomes a
  :class:`DwrError` naming the path.
- :func:`run_lock` holds an exclusive ``fcntl.flock`` on ``DIR/.lock`` (the file holds the
  holder's pid) while a run writes into ``DIR``. The kernel drops the lock when its holder
  dies, so a lock left by a killed run is simply taken over.
- :func:`check_output` refuses, before any work, an output that would destroy something:
  the same file as an input (also through a symlink or a hard link), a FIFO, a device, a
  directory, or a place that cannot be written (tried with a real temporary file).
- :func:`open_regular` is the one way user files are opened for reading: anything but a
  regular file (a FIFO would block the read forever, ``/dev/zero`` never ends) is refused
  before a byte is read.
- A write sweeps stale temporary files of its own output (``.NAME.XXXXXXXX.tmp`` left by a
  killed run): only those older than :data:`STALE_TMP_S` that no live process holds (a
  writer holds an ``flock`` on its temporary file while it writes).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
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

#: Seconds after which an unheld temporary file of an output counts as stale.
STALE_TMP_S = 60.0

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
        sweep_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while writing: a sweep never takes a live file
        os.fchmod(fd, _CREATE_MODE)  # mkstemp makes 0600; a written file reads like open()'s
        with os.fdopen(fd, "wb") as f:  # closed (unlocked) only once renamed
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


def _temp_pattern(name: str) -> re.Pattern[str]:
    """The names :func:`atomic_write` gives the temporary files of an output called ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.tmp")


def sweep_stale_temps(path: str | os.PathLike, age_s: float = STALE_TMP_S) -> list[Path]:
    """Remove the temporary files a killed write of ``path`` left beside it: older than
    ``age_s`` and not locked by a live writer. Returns what was removed; never raises."""
    path = Path(path)
    pattern, removed = _temp_pattern(path.name), []
    try:
        names = [e.name for e in os.scandir(path.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return removed
    for name in names:
        if _remove_if_stale(path.parent / name, time.time() - age_s):
            removed.append(path.parent / name)
    return removed


def _remove_if_stale(tmp: Path, before: float) -> bool:
    """Unlink ``tmp`` if it is a regular file older than ``before`` that nobody locks."""
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mtime > before:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a live writer holds it
        os.unlink(tmp)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


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
    """:func:`check_output` of a file no input may be (kept for its callers)."""
    return check_output(path, (), what)


def check_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), what: str = "-o"
) -> Path:
    """Refuse, before any work starts, an output file that would destroy something or cannot
    be written: one of ``inputs`` (also through a symlink or hard link), a directory, a FIFO,
    a device or socket, a path under a file, a directory that cannot be written."""
    if not str(path).strip():
        raise DwrError(f"{what} is empty; give a file name")
    p = Path(path)
    _refuse_special(p, what)
    check_not_input(p, inputs, what)
    _check_directory_of(p, what)
    return p


def check_not_input(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], what: str = "-o"
) -> None:
    """Refuse an output ``path`` that is one of ``inputs`` (the same file, also through a
    symlink or a hard link); touches nothing."""
    for source in inputs:
        if source is not None and _same_file(path, source):
            raise DwrError(
                f"{what} {path} is the input {source} itself: writing it would destroy the "
                f"input; choose another {what}"
            )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def _refuse_special(p: Path, what: str) -> None:
    """An existing target must be a regular file: writing replaces it by a rename."""
    try:
        mode = os.stat(p).st_mode
    except (FileNotFoundError, NotADirectoryError):  # the directory check words the latter
        return
    except OSError as exc:
        raise DwrError(f"cannot write {what} {p}: {describe_os_error(exc)}") from None
    if stat.S_ISDIR(mode):
        raise DwrError(f"{what} {p} is a directory; give a file name")
    if not stat.S_ISREG(mode):
        raise DwrError(
            f"{what} {p} is {_kind(mode)}, not a regular file: dwr would replace it; "
            f"choose another {what}"
        )


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _check_directory_of(p: Path, what: str) -> None:
    """The directory of ``p`` exists (or is created) and a file can be created in it: tried
    with a real temporary file, since permissions do not tell a read-only filesystem, root or
    a full quota."""
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise DwrError(f"cannot write {what} {p}: {parent} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DwrError(
            f"cannot write {what} {p}: cannot create a file in {parent} ({describe_os_error(exc)})"
        ) from None


def open_regular(path: str | os.PathLike, what: str = "file") -> BinaryIO:
    """Open a user's file for binary reading, refusing (:class:`DwrError`) anything but a
    regular file before a byte is read: a FIFO would block forever, a device never end.
    Opened non-blocking and checked on the descriptor, so a FIFO swapped in cannot block
    either. A missing or unreadable file raises its ``OSError`` (callers word it)."""
    where = os.fspath(path)
    fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            label = f"{what} {where}" if what else where
            raise DwrError(f"{label}: {_kind(mode)}, not a regular file; give a file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The UTF-8 text of a regular file (:func:`open_regular`); :class:`DwrError` if it is
    not text. A missing or unreadable file raises its ``OSError``."""
    with open_regular(path, what) as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DwrError(f"{what} {os.fspath(path)} is not UTF-8 text ({exc.reason})") from None


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
def run_lock(
    directory: str | os.PathLike, name: str = LOCK_NAME, keep: bool = True
) -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (created if missing) for the ``with`` block.

    A second process asking for the same lock gets a :class:`DwrError` naming the holder's
    pid. The same process may re-enter its own lock. Non-zero ranks of a distributed run
    skip the lock (rank 0 holds it for them). A directory this call created and in which
    nothing was written (the run failed on bad input) is removed again. The lock file of a run
    directory stays; ``keep=False`` (a lock beside a single output file) removes it while still
    held: a process that opened it meanwhile finds it unlinked and takes a new one.
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
        if not keep:
            with contextlib.suppress(OSError):
                lock_path.unlink()  # still locked: see _acquire's inode check
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
