"""Atomic writes and run-directory locks (dwr.files)."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from dwr import files
from dwr.errors import DwrError

HOLD = """
import sys, time
from dwr.files import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.json"
    files.atomic_write_json(p, {"x": 1})
    files.atomic_write(p, b"new")
    assert p.read_bytes() == b"new"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.json"]


def test_atomic_write_full_disk_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "a.txt"
    p.write_text("old")

    def full(f, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_write_all", full)
    with pytest.raises(DwrError, match=r"cannot write .*a\.txt: No space left on device"):
        files.atomic_write(p, "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_callback_failure_cleans_up(tmp_path):
    def boom(f):
        f.write(b"half")
        raise RuntimeError("serialiser failed")

    with pytest.raises(RuntimeError):
        files.atomic_write(tmp_path / "a.bin", boom)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["dir", "under_file"])
def test_atomic_write_bad_target_is_a_dwr_error(tmp_path, kind):
    (tmp_path / "f").write_text("x")
    target = tmp_path / "d" if kind == "dir" else tmp_path / "f" / "a.json"
    if kind == "dir":
        target.mkdir()
    with pytest.raises(DwrError, match="cannot write"):
        files.atomic_write(target, "x")
    assert not [x for x in tmp_path.rglob("*") if x.name.endswith(".tmp")]


def test_check_writable_dir(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DwrError, match="exists and is not a directory"):
        files.check_writable_dir(f)
    with pytest.raises(DwrError, match="cannot create --out directory"):
        files.check_writable_dir(f / "sub")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions do not apply
            pytest.skip("root ignores directory permissions")
        with pytest.raises(DwrError, match="not writable"):
            files.check_writable_dir(ro)
    finally:
        ro.chmod(0o700)


def test_lock_reentrant_in_one_process(tmp_path):
    with files.run_lock(tmp_path), files.run_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


def _holder(path):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_process_is_refused_then_stale_lock_taken_over(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(DwrError, match=rf"in use by another dwr process \(pid {holder.pid}\)"):
            with files.run_lock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert (tmp_path / ".lock").read_text().strip() == str(holder.pid)  # stale pid left behind
    t0 = time.monotonic()
    with files.run_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    assert time.monotonic() - t0 < 5


def test_written_files_get_the_mode_open_would_give(tmp_path):
    import os

    from dwr.files import atomic_write

    mask = os.umask(0o022)
    os.umask(mask)
    atomic_write(tmp_path / "model.dwre", b"x")
    assert (tmp_path / "model.dwre").stat().st_mode & 0o777 == 0o666 & ~mask


# -- outputs that would destroy something (issue 24) -----------------------------------------
def test_check_output_refuses_an_input_also_through_links(tmp_path):
    src = tmp_path / "best.ckpt"
    src.write_bytes(b"weights")
    (tmp_path / "link.dwre").symlink_to(src)
    os.link(src, tmp_path / "hard.ckpt")
    for out in (src, tmp_path / "link.dwre", tmp_path / "hard.ckpt", tmp_path / "." / "best.ckpt"):
        with pytest.raises(DwrError, match="is the input .* itself"):
            files.check_output(out, [src])
    assert files.check_output(tmp_path / "other.dwre", [src, None]) == tmp_path / "other.dwre"
    assert src.read_bytes() == b"weights"


def test_check_output_refuses_special_files_and_keeps_them(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(DwrError, match="is a FIFO, not a regular file"):
        files.check_output(fifo)
    assert stat_kind(fifo) == "fifo"
    with pytest.raises(DwrError, match="is a device, not a regular file"):
        files.check_output("/dev/null")
    with pytest.raises(DwrError, match="is a directory"):
        files.check_output(tmp_path)


def stat_kind(p) -> str:
    import stat

    return "fifo" if stat.S_ISFIFO(os.lstat(p).st_mode) else "other"


def test_check_output_tries_the_directory_and_says_so_once(tmp_path):
    """Root ignores permissions: a real file is tried. The old message read 'the directory of
    -o directory rofs is not writable; choose another the directory of -o'."""
    with pytest.raises(DwrError) as info:
        files.check_output("/proc/dwr-test-out.dwre", what="-o")
    message = str(info.value)
    assert message.startswith("cannot write -o /proc/dwr-test-out.dwre: cannot create a file in")
    assert "the directory of" not in message and message.count("-o ") == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(DwrError, match="is not a directory"):
        files.check_output(tmp_path / "file" / "out.json")
    with pytest.raises(DwrError, match="empty"):
        files.check_output("")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # the trial file is gone


# -- reading: only regular files ---------------------------------------------------------------
@pytest.mark.timeout(30)
def test_open_regular_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(DwrError, match="recipe file .*: a FIFO, not a regular file"):
        files.open_regular(fifo, "recipe file")
    with pytest.raises(DwrError, match="a directory, not a regular file"):
        files.read_text(tmp_path)
    with pytest.raises(FileNotFoundError):
        files.open_regular(tmp_path / "missing")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(DwrError, match="not UTF-8"):
        files.read_text(tmp_path / "bad.txt")
    (tmp_path / "ok.txt").write_text("fine")
    assert files.read_text(tmp_path / "ok.txt") == "fine"


# -- stale temporary files ----------------------------------------------------------------------
def _temp(directory, name: str, age_s: float):
    p = directory / name
    p.write_bytes(b"partial")
    os.utime(p, (time.time() - age_s, time.time() - age_s))
    return p


def test_a_write_sweeps_only_stale_unheld_temps_of_its_own_output(tmp_path):
    import fcntl

    stale = _temp(tmp_path, ".m.dwre.ab12cd34.tmp", 3600)
    fresh = _temp(tmp_path, ".m.dwre.zz99yy88.tmp", 0)
    held = _temp(tmp_path, ".m.dwre.hh11hh22.tmp", 3600)
    other = _temp(tmp_path, ".n.dwre.ab12cd34.tmp", 3600)
    odd = _temp(tmp_path, ".m.dwre.notmkstemp.tmp", 3600)
    with open(held, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # a live writer (another open file: the lock conflicts)
        files.atomic_write(tmp_path / "m.dwre", b"new")
    assert (tmp_path / "m.dwre").read_bytes() == b"new"
    assert not stale.exists()
    assert fresh.exists() and held.exists() and other.exists() and odd.exists()


def test_a_lock_not_kept_is_removed(tmp_path):
    with files.run_lock(tmp_path, keep=False):
        assert (tmp_path / ".lock").exists()
    assert not list(tmp_path.iterdir())
    with files.run_lock(tmp_path):  # a run directory keeps its lock file
        pass
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


SLOW_WRITE = """
import sys, time, types
from dwr import files
from dwr.cli.main import _sigterm_as_exception, _run

def slow(f, data):
    f.write(data)
    print("writing", flush=True)
    time.sleep(60)

files._write_all = slow

def write(args):
    files.atomic_write(sys.argv[1], b"x" * 1000)

with _sigterm_as_exception():
    sys.exit(_run(types.SimpleNamespace(func=write)))
"""


@pytest.mark.timeout(60)
def test_sigterm_during_a_write_removes_the_temp_file(tmp_path):
    """What ``docker stop`` sends: the write's cleanup runs, one line, exit 143."""
    out = tmp_path / "model.dwre"
    p = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITE, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "writing"
    assert len(list(tmp_path.glob(".model.dwre.*.tmp"))) == 1
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGTERM
    assert err.strip() == "dwr: terminated"
    assert not list(tmp_path.iterdir())


FORKED_CHILD = """
import os, signal, sys, time
from dwr.cli.main import _sigterm_as_exception

with _sigterm_as_exception():
    pid = os.fork()
    if pid == 0:  # like a DataLoader worker: inherits the handler
        time.sleep(60)
        os._exit(0)
    time.sleep(0.5)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
"""


@pytest.mark.timeout(60)
def test_a_forked_child_dies_of_sigterm_as_by_default():
    """Only the process that installed the handler turns SIGTERM into its cleanup path."""
    out = subprocess.run([sys.executable, "-c", FORKED_CHILD], capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
