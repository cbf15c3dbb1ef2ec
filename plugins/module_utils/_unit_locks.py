# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run at a time on a unit: a lock per gateway, held by the ``ansible-playbook`` run that works on it.

A run is the controller's ``ansible-playbook`` process (the parent of the worker a stage runs in), named by its
PID and start time, so a PID the kernel hands out again is not taken for the old run. A lock names its run; it
holds while that process lives, so a killed run leaves a lock the next run recognises as stale and takes over,
and a finished run needs no clean-up. The lock files live in a folder of the operator's (the ledger's
``.locks``), made private, and are opened without following links.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import fcntl
import getpass
import json
import os
import re
import socket
import stat
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._files import ensure_directory

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def process_start(pid, proc="/proc"):
    """The start time of process ``pid`` in clock ticks since boot, or None when there is no such process."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (IOError, OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat(5); the two before the split are pid and comm


def process_started(start, proc="/proc"):
    """When a process that started ``start`` clock ticks after boot started, as UTC text (None when unknown)."""
    if start is None:
        return None
    try:
        with open(os.path.join(proc, "stat")) as handle:
            boot = [int(line.split()[1]) for line in handle if line.startswith("btime ")][0]
    except (IOError, OSError, IndexError, ValueError):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(boot + start // os.sysconf("SC_CLK_TCK")))


class Run:
    """The ``ansible-playbook`` process a stage works for: ``pid``, ``start`` (ticks), who, where and when."""

    def __init__(self, pid, start, user, host, started):
        self.pid = pid
        self.start = start
        self.user = user
        self.host = host
        self.started = started

    @classmethod
    def current(cls, proc="/proc"):
        """The run of this worker: its parent process."""
        pid = os.getppid()
        start = process_start(pid, proc)
        return cls(pid, start, getpass.getuser(), socket.gethostname(),
                   process_started(start, proc) or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def name(self):
        """The run in the ledger's outcomes: the same for every stage of one ansible-playbook, never for two.
        The process's start is named by its clock tick after boot, not by a time of day: the boot time the kernel
        reports moves with the clock's corrections, so two stages of one run could name different seconds (seen);
        the outcome's ``at`` says when."""
        return "%s@%s pid %s start tick %s" % (self.user, self.host, self.pid, self.start)

    def as_dict(self):
        return {"pid": self.pid, "start": self.start, "user": self.user, "host": self.host, "started": self.started}

    def same(self, other):
        return other is not None and (self.host, self.pid, self.start) == (
            other.get("host"), other.get("pid"), other.get("start"))

    @staticmethod
    def alive(holder, proc="/proc"):
        """Whether the run a lock names is still running (on this machine; another machine's run counts as alive)."""
        if holder.get("host") != socket.gethostname():
            return True
        return process_start(holder.get("pid"), proc) == holder.get("start")

    @staticmethod
    def describe(holder):
        return "the ansible-playbook run of %s on %s (PID %s, started %s)" % (
            holder.get("user"), holder.get("host"), holder.get("pid"), holder.get("started"))


class LockHeld(Exception):
    """Another live run holds the unit."""


class UnitLocks:
    """``take(gateway)`` for the current run, in ``folder``."""

    def __init__(self, folder, run=None, proc="/proc"):
        self.folder = folder
        self.run = run or Run.current(proc)
        self.proc = proc

    def _folder(self):
        ensure_directory(os.path.dirname(os.path.abspath(self.folder)))
        try:
            os.mkdir(self.folder, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        info = os.lstat(self.folder)
        if not stat.S_ISDIR(info.st_mode):
            raise OSError(errno.ENOTDIR, "%s is not a folder (a link?): the unit locks need a folder of their own"
                          % self.folder)

    def take(self, gateway):
        """Lock ``gateway`` for this run; LockHeld names the live run that has it. A stale lock is taken over."""
        if not _NAME.match(gateway):
            raise ValueError("%r cannot name a lock file" % gateway)
        self._folder()
        path = os.path.join(self.folder, gateway + ".lock")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(descriptor, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # held for the look and the write only
            try:
                text = handle.read()
                try:
                    holder = json.loads(text) if text.strip() else None
                except ValueError:
                    holder = None  # a torn or foreign file: nobody's
                if holder and not self.run.same(holder) and Run.alive(holder, self.proc):
                    raise LockHeld("%s is being worked on by %s; wait for it to end, or stop it" % (
                        gateway, Run.describe(holder)))
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(dict(self.run.as_dict(), gateway=gateway)))
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
