"""reproduce.training.lock: one process per run directory (flock on <run_dir>/.lock).

The other holder is a real second process (``subprocess``): it takes the lock, says so on
stdout and waits on stdin; the tests then try the same directory from here.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from reproduce.training.lock import LOCK_NAME, RunDirBusy, acquire, hold_run_dir, read_holder

HOLDER = textwrap.dedent("""
    import sys
    from reproduce.training.lock import hold_run_dir
    with hold_run_dir(sys.argv[1], what="stage fcn32s"):
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
""")


@pytest.fixture
def holder(tmp_path):
    """Start a process holding ``tmp_path / 'run'``; yields (Popen, run_dir)."""
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "held", proc.stderr.read()
        yield proc, run_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_second_holder_in_another_process_is_refused_naming_it(holder):
    proc, run_dir = holder
    with pytest.raises(RunDirBusy) as info:
        with hold_run_dir(run_dir, what="stage fcn32s"):
            pytest.fail("a second holder got the lock")
    message = str(info.value)
    assert "\n" not in message
    assert f"pid {proc.pid} " in message
    assert socket.gethostname() in message and str(run_dir) in message
    assert "stage fcn32s" in message and "-c" in message   # what, and its command line
    assert info.value.holder["pid"] == proc.pid
    assert info.value.holder["started"].endswith("UTC") and info.value.holder["started"] in message
    assert isinstance(info.value, RuntimeError)


def test_lock_is_released_when_the_holder_exits(holder):
    proc, run_dir = holder
    with pytest.raises(RunDirBusy):
        acquire(run_dir)
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"
    assert proc.wait(timeout=30) == 0
    with hold_run_dir(run_dir, what="second") as lock:
        assert lock.held and read_holder(run_dir)["pid"] == os.getpid()
        assert read_holder(run_dir)["what"] == "second"
    assert not lock.held


def test_lock_is_released_when_the_holder_is_killed(holder):
    proc, run_dir = holder
    assert read_holder(run_dir)["pid"] == proc.pid
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert read_holder(run_dir)["pid"] == proc.pid   # the text of the dead holder stays ...
    with hold_run_dir(run_dir) as lock:               # ... but the lock died with it
        assert lock.held and read_holder(run_dir)["pid"] == os.getpid()


def test_refused_in_another_process_while_this_one_holds(tmp_path):
    run_dir = tmp_path / "run"
    probe = ("import sys\nfrom reproduce.training.lock import acquire, RunDirBusy\n"
             "try:\n    acquire(sys.argv[1])\nexcept RunDirBusy as e:\n    print(e)\n    sys.exit(3)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    with hold_run_dir(run_dir, what="stage fcn16s"):
        done = subprocess.run([sys.executable, "-c", probe, str(run_dir)], capture_output=True,
                              text=True, env=env, timeout=60)
        assert done.returncode == 3, done.stderr
        assert f"pid {os.getpid()} " in done.stdout and "stage fcn16s" in done.stdout
    done = subprocess.run([sys.executable, "-c", probe, str(run_dir)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr   # free again after the block


def test_same_process_reentry_is_refused(tmp_path):
    with hold_run_dir(tmp_path, what="stage fcn8s"):
        with pytest.raises(RunDirBusy, match=f"already held by this process \\(pid {os.getpid()}\\)"):
            with hold_run_dir(tmp_path):
                pytest.fail("re-entered")
        with pytest.raises(RunDirBusy):   # also through another spelling of the same directory
            acquire(tmp_path / "." / "")
    with hold_run_dir(tmp_path):          # the refused attempts did not leave it marked as held
        pass


def test_released_after_an_exception_in_the_block(tmp_path):
    with pytest.raises(_Boom):
        with hold_run_dir(tmp_path):
            raise _Boom
    with hold_run_dir(tmp_path) as lock:
        assert lock.held


class _Boom(Exception):
    pass


def test_lock_file_records_the_holder_and_creates_the_directory(tmp_path):
    run_dir = tmp_path / "runs" / "fcn32s"
    with hold_run_dir(run_dir, what="stage fcn32s") as lock:
        recorded = json.loads((run_dir / LOCK_NAME).read_text())
        assert recorded == lock.holder
        assert recorded["pid"] == os.getpid() and recorded["host"] == socket.gethostname()
        assert recorded["what"] == "stage fcn32s" and recorded["command"]


def test_only_rank_zero_locks(holder):
    proc, run_dir = holder
    with hold_run_dir(run_dir, rank=1) as lock:   # held elsewhere, yet rank 1 is not refused
        assert lock is None
    with pytest.raises(RunDirBusy):
        with hold_run_dir(run_dir, rank=0):
            pass


def test_unreadable_holder_details_still_give_one_line(tmp_path):
    import fcntl

    (tmp_path / LOCK_NAME).write_text("not json")
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    try:
        # an open file description of our own, flock'd: the kernel refuses a second one even in
        # this process; the registry does not know it, so this is the "another process" path
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunDirBusy, match="has not written its details") as info:
            acquire(tmp_path)
        assert "\n" not in str(info.value) and info.value.holder == {}
    finally:
        os.close(fd)
    assert read_holder(tmp_path) == {}
