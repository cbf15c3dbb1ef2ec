"""gateway_facts and gateway_tunnel against a simulated mLinux unit over real SSH: the migration of an existing
/home/root/.ssh, the clock warning, and what the ledger holds (never a password)."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_facts import Identifier
from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_tunnel import TunnelInstaller
from tests.conftest import ssh_client, ssh_run


def _key(tmp_path, name):
    path = str(tmp_path / name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path], check=True)
    with open(path + ".pub") as handle:
        return handle.read().strip()


def _connection(device, ledger_dir):
    return {"name": device["name"], "address": device["address"], "port": device["ssh_port"],
            "bind_interface": None, "username": "mtadm", "password": device["credentials"]["mlinux"]["password"],
            "key_file": None, "allow_agent": False, "look_for_keys": False, "connect_timeout": 10,
            "ledger_dir": ledger_dir, "host_key": None}


def _as_root(device, command):
    client = ssh_client(device["address"], device["ssh_port"], "mtadm", device["credentials"]["mlinux"]["password"])
    try:
        password = device["credentials"]["mlinux"]["password"]
        result = ssh_run(client, "sudo -S -p '' sh -c %s" % shlex.quote(command), stdin=f"{password}\n".encode())
        assert result.status == 0, result.stderr
        return result.stdout
    finally:
        client.close()


def test_an_existing_root_ssh_folder_is_moved_into_var_config_with_its_keys(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "1", "--mlinux-mtcap", "1", "--device", "mlinux-01:ntp_reachable=0")
    device = sim.devices[0]
    operator, provisioning = _key(tmp_path, "operator"), _key(tmp_path, "provisioning")
    _as_root(device, "mkdir -p -m 700 /home/root/.ssh && printf '%%s\\n' '%s' > /home/root/.ssh/authorized_keys && "
                     "echo 'jumphost ssh-ed25519 AAAA' > /home/root/.ssh/known_hosts" % operator)
    ledger_dir = str(tmp_path / "ledger")
    facts = Identifier(dict(_connection(device, ledger_dir), reflashed=False, expected_product_type="mtcap")).run()
    assert facts["identity"]["product_type"] == "mtcap"
    params = dict(_connection(device, ledger_dir), authorized_keys=[provisioning], remote_host="127.0.0.1",
                  remote_ssh_port=22, remote_user="ttn-test-gw", remote_port=28800, keepalive_port=48800,
                  local_port=22, daemon="/usr/bin/autossh", ssh_key="/etc/ssh/ssh_host_rsa_key", time_sync=True,
                  ntp_server="pool.ntp.org")
    first = TunnelInstaller(params).run()
    assert "move /home/root/.ssh into /var/config/home/root/.ssh (keeping known_hosts) and link it" in first["actions"]
    assert any("could not set the clock from pool.ntp.org" in warning for warning in first["warnings"])
    on_unit = _as_root(device, "readlink /home/root/.ssh; cat /var/config/home/root/.ssh/authorized_keys; "
                               "cat /var/config/home/root/.ssh/known_hosts; stat -c '%a' /var/config/home/root/.ssh "
                               "/var/config/home/root/.ssh/authorized_keys").splitlines()
    assert on_unit == ["/var/config/home/root/.ssh", operator, provisioning, "jumphost ssh-ed25519 AAAA", "700", "600"]
    second = TunnelInstaller(params).run()
    assert second["changed"] is False and second["actions"] == []

    with open(os.path.join(ledger_dir, device["name"] + ".yml")) as handle:
        text = handle.read()
    record = yaml.safe_load(text)
    # the stage's details; its outcome (status, seconds, run) is the action plugin's to file
    assert record["stages"]["tunnel"] == {"tunnel_port": 28800} and record["jumphost"]["tunnel_port"] == 28800
    assert device["credentials"]["mlinux"]["password"] not in text


def test_the_tunnel_stage_refuses_a_unit_the_ledger_has_not_identified(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "1")
    device = sim.devices[0]
    params = dict(_connection(device, str(tmp_path / "ledger")), authorized_keys=[_key(tmp_path, "provisioning")],
                  remote_host="127.0.0.1", remote_ssh_port=22, remote_user="gw", remote_port=28801,
                  keepalive_port=48802, local_port=22, daemon="/usr/bin/autossh", ssh_key="/etc/ssh/ssh_host_rsa_key",
                  time_sync=False, ntp_server="pool.ntp.org")
    with pytest.raises(StageError) as caught:
        TunnelInstaller(params).run()
    assert caught.value.message == ("mlinux-01: the ledger has no identification of it yet: run gateway_facts first "
                                    "(it pins the host keys)")
    assert _as_root(device, "test -e /var/config/ssh_tunnel.default || echo absent").strip() == "absent"


def test_ttn_multitech_cms_own_init_script_is_installed_byte_for_byte_and_a_bad_one_refused(sim_factory, tmp_path):
    from simulator.unit import ttn_multitech_cm_checkout
    sim = sim_factory("--mlinux", "1")
    device = sim.devices[0]
    ledger_dir = str(tmp_path / "ledger")
    Identifier(dict(_connection(device, ledger_dir), reflashed=False, expected_product_type=None)).run()
    params = dict(_connection(device, ledger_dir), authorized_keys=[_key(tmp_path, "provisioning")],
                  remote_host="127.0.0.1", remote_ssh_port=22, remote_user="gw", remote_port=28802,
                  keepalive_port=48804, local_port=22, daemon="/usr/bin/autossh", ssh_key="/etc/ssh/ssh_host_rsa_key",
                  time_sync=False, ntp_server="pool.ntp.org")
    own = TunnelInstaller(dict(params, init_script_source=None))
    assert any("make apply replaces it" in warning for warning in own.warnings)
    for bad, reason in ((str(tmp_path / "missing"), "cannot be read"), ("/usr/bin/busybox", "is not a shell script")):
        with pytest.raises(StageError, match=reason):
            TunnelInstaller(dict(params, init_script_source=bad))
    source = os.path.join(ttn_multitech_cm_checkout(), "roles", "conduit", "files", "ssh_tunnel.initd")
    result = TunnelInstaller(dict(params, init_script_source=source)).run()
    assert "write /var/config/init.d/ssh_tunnel" in result["actions"]
    assert not any("make apply replaces it" in warning for warning in result["warnings"])
    with open(source) as handle:
        assert _as_root(device, "cat /var/config/init.d/ssh_tunnel") == handle.read()
    assert _as_root(device, "stat -c %a /var/config/ssh_tunnel.default /var/config/init.d/ssh_tunnel").split() == \
        ["755", "755"]
    again = TunnelInstaller(dict(params, init_script_source=source)).run()
    assert again["changed"] is False, again["actions"]
