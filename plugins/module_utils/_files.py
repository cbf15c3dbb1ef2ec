# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the controller-side modules write (ledger, reports, the organisation's inventory)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import fcntl
import os
import re
import tempfile
import threading
import time


def ensure_directory(path, mode=0o755):
    """``path`` and its parents, made when missing. Every gateway of a batch runs this at once: one that finds the
    folder made by another between its look and its mkdir is not an error."""
    try:
        os.makedirs(path, mode)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(path):
            raise


def _temp_name(basename):
    """What ``tempfile.mkstemp(prefix=".<basename>.")`` names a temp file beside ``basename``."""
    return re.compile(r"^\.%s\.[a-z0-9_]{8}$" % re.escape(basename))


def write_atomic(path, text, backup=None):
    """``text`` into the file ``path`` leads to (a symlink is followed: the link stays a link): a temp file beside
    it with the same mode, owner and group (a new file: 0644, those of its folder), fsync, rename;
    ``backup(path)`` first when given and the file exists. Nothing else writes this file meanwhile (the caller
    holds the gateway's or the file's lock), so a temp file of it beside it is one a killed writer left: it goes."""
    target = os.path.realpath(path)
    directory, basename = os.path.split(target)
    ensure_directory(directory)
    if os.path.exists(target):
        stat = os.stat(target)
        mode, owner = stat.st_mode & 0o7777, (stat.st_uid, stat.st_gid)
        if backup is not None:
            backup(target)
    else:
        folder = os.stat(directory)
        mode, owner = 0o644, (folder.st_uid, folder.st_gid)
    handle, temp = tempfile.mkstemp(prefix=".%s." % basename, dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        if (os.stat(temp).st_uid, os.stat(temp).st_gid) != owner:
            os.chown(temp, owner[0], owner[1])
        os.rename(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    leftover = _temp_name(basename)
    for name in os.listdir(directory):
        if leftover.match(name):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass  # gone already, or not ours to remove: it harms nothing


class FolderLock:
    """An exclusive lock for the files of one folder: ``flock`` on the folder itself, so that no lock file lies in
    the operator's folder, nor at a path in /tmp another user could plant first. A folder not made yet is locked
    through the nearest one that exists."""

    def __init__(self, path, timeout=120):
        folder = os.path.dirname(os.path.realpath(path)) or "."
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        self.folder = folder
        self.timeout = timeout
        self.handle = None

    def __enter__(self):
        self.handle = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        deadline = time.time() + self.timeout
        try:
            while True:
                try:
                    fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return self
                except (IOError, OSError) as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.time() > deadline:
                        raise
                time.sleep(0.02)
        except BaseException:
            os.close(self.handle)
            raise

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        os.close(self.handle)


class FileVersionCache:
    """Values worked out from files, each once per version of its file (inode, size, mtime): a batch asks the same
    of one file for each of its gateways. A module's worker process holds it for one batch; its threads share it."""

    def __init__(self):
        self._values = {}
        self._lock = threading.Lock()

    def get(self, path, key, compute):
        """``compute()`` for ``key`` of ``path``, computed again once the file has changed."""
        status = os.stat(path)  # before compute: a change while it runs shows at the next call
        version = (status.st_ino, status.st_size, status.st_mtime_ns)
        with self._lock:
            known = self._values.get((path, key))
        if known and known[0] == version:
            return known[1]
        value = compute()
        with self._lock:
            self._values[(path, key)] = (version, value)
        return value
