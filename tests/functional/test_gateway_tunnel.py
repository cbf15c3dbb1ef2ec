"""gateway_facts and gateway_tunnel against a simulated mLinux unit over real SSH: the migration of an existing
/home/root/.ssh, the clock warning, and what the ledger holds (never a password)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_facts import Identifier
from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_tunnel import TunnelInstaller
from tests.conftest import as_root


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


def test_an_existing_root_ssh_folder_is_moved_into_var_config_with_its_keys(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "1", "--mlinux-mtcap", "1", "--device", "mlinux-01:ntp_reachable=0")
    device = sim.devices[0]
    operator, provisioning = _key(tmp_path, "operator"), _key(tmp_path, "provisioning")
    as_root(device, "mkdir -p -m 700 /home/root/.ssh && printf '%%s\\n' '%s' > /home/root/.ssh/authorized_keys && "
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
    on_unit = as_root(device, "readlink /home/root/.ssh; cat /var/config/home/root/.ssh/authorized_keys; "
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
    assert as_root(device, "test -e /var/config/ssh_tunnel.default || echo absent").strip() == "absent"


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
        assert as_root(device, "cat /var/config/init.d/ssh_tunnel") == handle.read()
    assert as_root(device, "stat -c %a /var/config/ssh_tunnel.default /var/config/init.d/ssh_tunnel").split() == \
        ["755", "755"]
    again = TunnelInstaller(dict(params, init_script_source=source)).run()
    assert again["changed"] is False, again["actions"]


def _impostor_sshd(tmp_path, client_public):
    """A real sshd on loopback with host keys of its own that lets ``client_public`` in as root: someone who took
    the jumphost's address."""
    from simulator.jumphost import free_ports
    folder = tmp_path / "impostor"
    folder.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key")], check=True)
    (folder / "authorized_keys").write_text(client_public + "\n")
    port = free_ports("127.0.0.1", 1)[0]
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPermitRootLogin prohibit-password\nUsePAM no\n"
        "StrictModes no\nAllowTcpForwarding yes\nPasswordAuthentication no\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    server = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from simulator.harness import wait_until
    wait_until(lambda: subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True,
                                      check=False).stdout, 20, "the impostor sshd")
    return server, port


def test_the_unit_pins_the_jumphost_and_its_tunnel_forwards_nothing_to_an_impostor(sim_factory, tmp_path):
    """The pin replaces what the unit had taken on trust for the jumphost (an impostor's key, plain and hashed),
    keeps its other entries; then OpenSSH, run with the tunnel's own options (ttn-multitech-cm's
    StrictHostKeyChecking=no), logs in to an impostor on the jumphost's name but refuses it the forwarding."""
    sim = sim_factory("--mlinux", "1")
    device = sim.devices[0]
    jumphost_keys = [_key(tmp_path, "jumphost_ed25519"), _key(tmp_path, "jumphost_ed25519_2")]
    client = str(tmp_path / "unit_key")
    client_public = _key(tmp_path, "unit_key")
    impostor, port = _impostor_sshd(tmp_path, client_public)
    try:
        name = f"[127.0.0.1]:{port}"
        taken = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(port), "127.0.0.1"], capture_output=True,
                               text=True, check=True).stdout.strip()
        (tmp_path / "hashed").write_text(taken + "\n")
        subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(tmp_path / "hashed")], check=True)
        other = "gitlab.example.org " + " ".join(jumphost_keys[0].split()[:2])
        as_root(device, "mkdir -p -m 700 /home/root/.ssh && printf '%%s\\n' '%s' '%s' '%s' > "
                        "/home/root/.ssh/known_hosts" % (taken, (tmp_path / "hashed").read_text().strip(), other))
        ledger_dir = str(tmp_path / "ledger")
        Identifier(dict(_connection(device, ledger_dir), reflashed=False, expected_product_type=None)).run()
        params = dict(_connection(device, ledger_dir), authorized_keys=[_key(tmp_path, "provisioning")],
                      remote_host="127.0.0.1", remote_ssh_port=port, remote_user="gw", remote_port=28803,
                      keepalive_port=48806, local_port=22, daemon="/usr/bin/autossh",
                      ssh_key="/etc/ssh/ssh_host_rsa_key", time_sync=False, ntp_server="pool.ntp.org",
                      jumphost_host_keys=jumphost_keys)
        planned = TunnelInstaller(params, check_mode=True).run()
        assert f"pin the jumphost's host keys for {name} in /var/config/home/root/.ssh/known_hosts" in \
            planned["actions"]
        TunnelInstaller(params).run()
        pinned = as_root(device, "cat /home/root/.ssh/known_hosts")
        assert pinned.splitlines() == [other] + [f"{name} " + " ".join(key.split()[:2]) for key in jumphost_keys]
        assert TunnelInstaller(params).run()["changed"] is False
        (tmp_path / "known_hosts").write_text(pinned)

        def tunnel_ssh(known_hosts):
            return subprocess.run(
                ["ssh", "-F", "none", "-i", client, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                 "-o", "ServerAliveInterval=30", "-o", "StrictHostKeyChecking=no",
                 "-o", f"UserKnownHostsFile={known_hosts}", "-R", "28803:localhost:22", "-p", str(port),
                 "root@127.0.0.1", "true"], capture_output=True, text=True, timeout=60, check=False)

        refused = tunnel_ssh(tmp_path / "known_hosts")
        assert refused.returncode == 0, refused.stderr  # logged in: only the pin keeps the tunnel from it
        assert "Port forwarding is disabled to avoid man-in-the-middle attacks" in refused.stderr
        assert (tmp_path / "known_hosts").read_text() == pinned  # and the impostor's key was not added
        unpinned = tunnel_ssh(tmp_path / "empty_known_hosts")
        assert unpinned.returncode == 0 and "Port forwarding is disabled" not in unpinned.stderr
    finally:
        impostor.terminate()
        impostor.wait(timeout=20)
