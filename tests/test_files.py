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
