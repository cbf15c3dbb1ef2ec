"""The controller's one way to write a file and to lock a folder's files."""

from __future__ import annotations

import errno
import glob
import os
import stat
import tempfile

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils import _org_ssh
from ansible_collections.lorawan.conduit.plugins.module_utils._files import FileVersionCache, FolderLock, write_atomic


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


def test_a_value_worked_out_from_a_file_is_worked_out_again_only_once_the_file_changed(tmp_path):
    path = tmp_path / "ssh_config"
    path.write_text("Host jumphost\n    Port 22\n")
    cache, computed = FileVersionCache(), []

    def read():
        computed.append(path.read_text())
        return computed[-1]

    assert [cache.get(str(path), "port", read) for _asked in range(3)] == ["Host jumphost\n    Port 22\n"] * 3
    assert len(computed) == 1
    cache.get(str(path), "another question", read)
    assert len(computed) == 2
    os.utime(path, ns=(0, 0))  # same size, same inode, another version
    path.write_text("Host jumphost\n    Port 23\n")
    assert cache.get(str(path), "port", read) == "Host jumphost\n    Port 23\n" and len(computed) == 3


def test_a_batch_asks_ssh_about_the_organisations_jump_leg_once_per_version_of_its_files(tmp_path, monkeypatch):
    """Each gateway of a batch plans the same jump leg: ssh -G and ssh-keygen -F run once, and again once the
    plan's own write changed the file they read."""
    ssh_config, known_hosts = tmp_path / "ssh_config", tmp_path / "known_hosts"
    ssh_config.write_text("Host jumphost\n    HostName 127.0.0.1\n    UserKnownHostsFile %s\n" % known_hosts)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQ/pxI5rLjytwRXykvHaAGQyZXiH+PuylLGk2xVx9DW"
    known_hosts.write_text("# nothing pinned yet\n")
    monkeypatch.setattr(_org_ssh, "_ASKED", FileVersionCache())
    asked = []
    real_run = _org_ssh.subprocess.run

    def counted(argv, check, **options):
        asked.append(argv[0])
        return real_run(argv, check=check, **options)

    monkeypatch.setattr(_org_ssh.subprocess, "run", counted)

    def read(path):
        return open(path).read() if os.path.exists(path) else None

    plans = [_org_ssh.jump_leg_plan(str(ssh_config), "jumphost", [key], read) for _gateway in range(8)]
    assert all(plan == plans[0] for plan in plans) and plans[0][0][0] == str(known_hosts)
    assert asked == ["ssh", "ssh-keygen"]
    known_hosts.write_text(plans[0][0][2])  # the first gateway's write
    assert _org_ssh.jump_leg_plan(str(ssh_config), "jumphost", [key], read) == []
    assert asked == ["ssh", "ssh-keygen", "ssh-keygen"]
