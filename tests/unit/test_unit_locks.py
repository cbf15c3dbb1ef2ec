"""One run at a time on a unit: a live run's lock refuses another run with its name; a lock whose run ended (or
whose PID was reused) is taken over; links and foreign folders are refused. The real path (two ansible-playbook
runs on the same units) is tests/functional/test_provision.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._unit_locks import (
    LockHeld,
    Run,
    UnitLocks,
    process_start,
)


def _run_of(pid: int) -> Run:
    return Run(pid, process_start(pid), "ops", socket.gethostname(), "2026-12-01 10:00:00 UTC")


def test_a_live_run_holds_the_unit_and_is_named(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        UnitLocks(str(tmp_path / ".locks"), run=_run_of(other.pid)).take("gw-a")
        with pytest.raises(LockHeld) as held:
            UnitLocks(str(tmp_path / ".locks"), run=_run_of(os.getpid())).take("gw-a")
        assert f"gw-a is being worked on by the ansible-playbook run of ops on {socket.gethostname()} " \
               f"(PID {other.pid}, started 2026-12-01 10:00:00 UTC)" in str(held.value)
        UnitLocks(str(tmp_path / ".locks"), run=_run_of(os.getpid())).take("gw-b")  # other units are free
        UnitLocks(str(tmp_path / ".locks"), run=_run_of(other.pid)).take("gw-a")  # its own run takes it again
    finally:
        other.kill()
        other.wait()


def test_the_lock_of_a_run_that_ended_is_taken_over(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    run = _run_of(ended.pid)
    ended.wait()
    UnitLocks(str(tmp_path / ".locks"), run=run).take("gw-a")
    mine = _run_of(os.getpid())
    UnitLocks(str(tmp_path / ".locks"), run=mine).take("gw-a")
    held = json.loads((tmp_path / ".locks" / "gw-a.lock").read_text())
    assert (held["pid"], held["start"]) == (os.getpid(), mine.start)


def test_a_reused_pid_is_not_the_old_run(tmp_path):
    stale = Run(os.getpid(), process_start(os.getpid()) - 1, "ops", socket.gethostname(), "earlier")
    UnitLocks(str(tmp_path / ".locks"), run=stale).take("gw-a")
    UnitLocks(str(tmp_path / ".locks"), run=_run_of(os.getpid())).take("gw-a")


def test_the_lock_folder_is_private_and_links_are_refused(tmp_path):
    UnitLocks(str(tmp_path / ".locks"), run=_run_of(os.getpid())).take("gw-a")
    assert os.stat(tmp_path / ".locks").st_mode & 0o777 == 0o700
    os.symlink(tmp_path / "elsewhere", tmp_path / ".locks" / "gw-b.lock")
    with pytest.raises(OSError):
        UnitLocks(str(tmp_path / ".locks"), run=_run_of(os.getpid())).take("gw-b")
    assert not (tmp_path / "elsewhere").exists()
    os.symlink(tmp_path, tmp_path / "linked")
    with pytest.raises(OSError, match="not a folder"):
        UnitLocks(str(tmp_path / "linked"), run=_run_of(os.getpid())).take("gw-a")
    with pytest.raises(ValueError):
        UnitLocks(str(tmp_path / ".locks"), run=_run_of(os.getpid())).take("../gw")
