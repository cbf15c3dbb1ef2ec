"""The controller's one way to write a file and to lock a folder's files."""

from __future__ import annotations

import errno
import glob
import os
import stat
import tempfile

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._files import FolderLock, write_atomic


def test_a_temp_file_a_killed_writer_left_beside_the_file_goes_with_the_next_write(tmp_path):
    target = tmp_path / "ttn-a.yml"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    handle, left = tempfile.mkstemp(prefix=".ttn-a.yml.", dir=tmp_path)  # as a writer killed mid-write leaves it
    os.close(handle)
    kept = [tmp_path / ".ttn-a.yml.bak", tmp_path / ".ttn-ab.yml.abcd1234", tmp_path / "ttn-a.yml.1.2026~"]
    for path in kept:
        path.write_text("the operator's\n")
    write_atomic(str(target), "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert not os.path.exists(left)
    assert sorted(os.listdir(tmp_path)) == sorted(["ttn-a.yml"] + [path.name for path in kept])


def test_a_write_through_a_link_writes_the_file_it_leads_to_and_the_link_stays(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "hosts").write_text("[test]\n")
    os.symlink("real/hosts", tmp_path / "hosts")
    write_atomic(str(tmp_path / "hosts"), "[test]\nttn-a\n")
    assert os.readlink(tmp_path / "hosts") == "real/hosts"
    assert (tmp_path / "real" / "hosts").read_text() == "[test]\nttn-a\n"


def test_a_folder_lock_is_exclusive_and_leaves_no_file_anywhere(tmp_path):
    path = str(tmp_path / "host_vars" / "ttn-a.yml")  # a folder not made yet: its parent is locked
    locks = os.path.join(tempfile.gettempdir(), "lorawan-conduit-*")
    before = set(glob.glob(locks)), os.listdir(tmp_path)
    with FolderLock(path):
        with pytest.raises(OSError) as held:
            with FolderLock(str(tmp_path / "hosts"), timeout=0.1):
                pass
        assert held.value.errno in (errno.EAGAIN, errno.EACCES)
    with FolderLock(str(tmp_path / "hosts"), timeout=0.1):
        pass  # free again once the first is left
    assert (set(glob.glob(locks)), os.listdir(tmp_path)) == before
