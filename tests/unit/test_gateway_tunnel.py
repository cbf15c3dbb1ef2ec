"""The jumphost's pin in the unit's known_hosts: which lines name the jumphost (plain and hashed, as the real
``ssh-keygen -H`` hashes them) and what the file keeps. The unit and the tunnel's ssh against an impostor are
tests/functional/test_gateway_tunnel.py."""

from __future__ import annotations

import shlex

import subprocess

from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_tunnel import RESTART, pinned_known_hosts, without_host
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import known_hosts_name, parse_public_key


def _public(tmp_path, name):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name)],
                   check=True)
    return parse_public_key((tmp_path / (name + ".pub")).read_text().strip())


def test_the_jumphost_is_named_as_ssh_names_it():
    assert known_hosts_name("jumphost.example.org", 22) == "jumphost.example.org"
    assert known_hosts_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_only_the_jumphosts_entries_are_replaced(tmp_path):
    impostor, jumphost, other = (_public(tmp_path, name) for name in ("impostor", "jumphost", "other"))
    name = "[127.0.0.1]:2222"
    hashed_file = tmp_path / "hashed"
    hashed_file.write_text("%s %s\n" % (name, impostor.text(comment="")))
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed_file)], check=True)
    hashed = hashed_file.read_text().strip()
    assert hashed.startswith("|1|") and without_host(hashed, name) is None
    assert without_host(hashed, "[127.0.0.1]:2223") == hashed
    current = "\n".join([
        "# the operator's note",
        "other.example.org,%s %s" % (name.upper(), impostor.text(comment="")),
        hashed,
        "other.example.org %s" % other.text(comment=""),
        "@revoked %s %s" % (name, impostor.text(comment="")),
        "[127.0.0.1]:22222 %s" % other.text(comment=""),
    ]) + "\n"
    pinned = pinned_known_hosts(current, name, [jumphost])
    assert pinned.splitlines() == [
        "# the operator's note",
        "other.example.org %s" % impostor.text(comment=""),
        "other.example.org %s" % other.text(comment=""),
        "@revoked %s %s" % (name, impostor.text(comment="")),
        "[127.0.0.1]:22222 %s" % other.text(comment=""),
        "%s %s" % (name, jumphost.text(comment="")),
    ]
    assert pinned_known_hosts(pinned, name, [jumphost]) == pinned
    assert pinned_known_hosts("", name, [jumphost]) == "%s %s\n" % (name, jumphost.text(comment=""))


class _RecordingSession:
    def __init__(self):
        self.commands = []

    def check(self, command, sudo=False, stdin=b""):
        self.commands.append(command)


def _installer(key):
    from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_tunnel import TunnelInstaller
    installer = TunnelInstaller({"name": "ttn-a", "authorized_keys": [key.text()], "remote_host": "jumphost.example",
                                 "remote_user": "ttn-a", "init_script_source": None, "time_sync": False,
                                 "restart_stalled": True})
    installer.session = _RecordingSession()
    return installer


def test_a_tunnel_whose_autossh_waits_out_its_back_off_is_restarted(tmp_path):
    """After the jumphost was away a while, autossh runs with no ssh and waits ever longer before its next try (up
    to ten minutes): a run that finds it so restarts the tunnel; one that finds ssh dialling leaves it alone."""
    key = _public(tmp_path, "provisioning")
    backing_off = _installer(key)
    backing_off._start({"running": "412", "dialling": ""}, changed_config=False)  # pylint: disable=protected-access
    assert backing_off.actions == ["restart the tunnel: autossh runs without its ssh (it waits out its back-off "
                                   "after failed connections)"]
    assert backing_off.session.commands == ["sh -c %s" % shlex.quote(RESTART)]
    dialling = _installer(key)
    dialling._start({"running": "412", "dialling": "413"}, changed_config=False)  # pylint: disable=protected-access
    assert dialling.actions == [] and dialling.session.commands == []
