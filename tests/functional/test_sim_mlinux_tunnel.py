"""The simulated mLinux unit: identity commands, shell behaviour, and a reverse
tunnel through the real sshd jumphost reached with OpenSSH ``ssh -J``."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess

import paramiko
import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_tunnel import INIT_SCRIPT
from ansible_collections.lorawan.conduit.plugins.module_utils._jumphost_accounts import tunnel_key_options
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import format_options
from tests.conftest import ssh_client, ssh_run
from simulator.jumphost import free_ports
from simulator.harness import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the jumphost needs root")  # CI runs as root


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from tests.conftest import _next_subnet
    from simulator.harness import start_simulator
    sim = start_simulator(["--subnet", _next_subnet(), "--mlinux", "2", "--mlinux-mtcap", "1", "--jumphost",
                           "--boot-time", "0.5"], workdir=str(tmp_path_factory.mktemp("fleet")))
    yield sim
    sim.stop()


def login(device, user="mtadm"):
    creds = device["credentials"]["mlinux"]
    return ssh_client(device["address"], device["ssh_port"], user, creds["password"])


@pytest.mark.parametrize("name", ["mlinux-01", "mlinux-02"])
def test_identity_commands(fleet, name):
    device = fleet.device(name)
    client = login(device)
    try:
        def show(attribute):
            return ssh_run(client, f"mts-io-sysfs show {attribute}")
        assert show("product-id").stdout.strip() == device["product_id"]
        assert show("device-id").stdout.strip() == device["serial"]
        assert show("mac-eth").stdout.strip().lower() == device["mac"]
        assert show("lora/eui").stdout.strip().lower() == device["lora_eui"]
        assert show("hw-version").stdout.strip() == device["hw_version"]
        missing = show("no-such-attribute")
        assert missing.status == 1 and "No such file or directory" in missing.stderr
        pub = ssh_run(client, "cat /etc/ssh/ssh_host_rsa_key.pub").stdout.split()
        offered = client.get_transport().get_remote_server_key()
        assert pub[:2] == [offered.get_name(), offered.get_base64()]
        assert " ".join(pub[:2]) == " ".join(device["host_key"].split()[:2])
        assert ssh_run(client, "head -n 1 /etc/mlinux-version").stdout == f"mLinux {device['mlinux_version']}\n"
    finally:
        client.close()
    assert device["product_type"] == ("mtcap" if name == "mlinux-02" else "mtcdt")


def test_shell_errors_look_like_a_shell(fleet):
    client = login(fleet.device("mlinux-01"))
    try:
        assert ssh_run(client, "frobnicate").status == 127
        assert ssh_run(client, "frobnicate").stderr == "sh: frobnicate: not found\n"
        assert ssh_run(client, "echo $(id -un)").stdout == "mtadm\n"
        denied = ssh_run(client, "echo x > /etc/passwd-test")
        assert (denied.status, denied.stderr) == (1, "sh: can't create /etc/passwd-test: Permission denied\n")
        chain = ssh_run(client, "false || echo a && echo b; test -d /var/config && echo dir | sort")
        assert chain.stdout == "a\nb\ndir\n"
        root = ssh_run(client, "sudo -S -p '' sh -c 'id -u; cat > /etc/written; cat /etc/written'",
                       stdin=(fleet.device("mlinux-01")["credentials"]["mlinux"]["password"] + "\nhello\n").encode())
        assert (root.status, root.stdout) == (0, "0\nhello\n")
    finally:
        client.close()


def test_root_password_login_and_too_many_auth_failures(fleet):
    device = fleet.device("mlinux-01")
    client = login(device, user="root")
    assert ssh_run(client, "id -u").stdout == "0\n"
    client.close()
    transport = paramiko.Transport((device["address"], device["ssh_port"]))
    transport.start_client(timeout=10)
    with pytest.raises((paramiko.AuthenticationException, paramiko.SSHException, EOFError)):
        for _attempt in range(7):
            transport.auth_password("root", "wrong")
    transport.close()


def _install_tunnel(fleet, name, port, keepalive, provisioning_pub, user=None):
    device = fleet.device(name)
    jump = fleet.jumphost
    user = user or f"gw-{name}"
    key = " ".join(device["host_key"].split()[:2])
    restrictions = format_options(tunnel_key_options(port, keepalive))
    fleet.jumphost_run(f"useradd --password '*' --create-home --shell /usr/sbin/nologin {user} && "
                       f"install -d -m 700 -o {user} /home/{user}/.ssh && "
                       f"printf '%s\\n' '{restrictions} {key}' > /home/{user}/.ssh/authorized_keys && "
                       f"chown {user} /home/{user}/.ssh/authorized_keys && "
                       f"chmod 600 /home/{user}/.ssh/authorized_keys")
    password = device["credentials"]["mlinux"]["password"]
    default = (f"DAEMON=/usr/bin/autossh\nLOCAL_PORT=22\nREMOTE_HOST={jump['address']}\nREMOTE_USER={user}\n"
               f"REMOTE_PORT={port}\nSSH_KEY=/etc/ssh/ssh_host_rsa_key\nSSH_PORT={jump['port']}\n"
               f'DAEMON_ARGS="-f -M {keepalive} -o ServerAliveInterval=30 -o StrictHostKeyChecking=no"\n')
    client = login(device)
    try:
        def root(command, data=""):
            result = ssh_run(client, f"sudo -S -p '' sh -c {shlex.quote(command)}",
                             stdin=f"{password}\n{data}".encode())
            assert result.status == 0, result.stderr
            return result
        root("mkdir -p -m 700 /var/config/home/root/.ssh && cat > /var/config/home/root/.ssh/authorized_keys",
             provisioning_pub)
        root("rm -rf /home/root/.ssh && ln -s /var/config/home/root/.ssh /home/root/.ssh")
        root("mkdir -p /var/config/init.d && cat > /var/config/ssh_tunnel.default", default)
        root("cat > /var/config/init.d/ssh_tunnel && chmod 755 /var/config/init.d/ssh_tunnel", INIT_SCRIPT)
        root("ln -sf /var/config/ssh_tunnel.default /etc/default/ssh_tunnel && "
             "ln -sf /var/config/init.d/ssh_tunnel /etc/init.d/ssh_tunnel")
        root("update-rc.d ssh_tunnel defaults 95 30 && /etc/init.d/ssh_tunnel restart")
    finally:
        client.close()


def _ssh_through_jumphost(fleet, port, device, key, command):
    """``ssh -J`` as an operator would type it; options for the jump hop come from a config file
    because ``-o`` on the command line does not reach the jump connection."""
    jump = fleet.jumphost
    known_hosts = os.path.join(fleet.workdir, f"known_hosts_{port}")
    with open(jump["known_hosts"]) as handle, open(known_hosts, "w") as out:
        out.write(handle.read())
        out.write(f"[localhost]:{port} {' '.join(device['host_key'].split()[:2])}\n")
    config = os.path.join(fleet.workdir, f"ssh_config_{port}")
    with open(config, "w") as out:
        out.write(f"Host jumphost\n  HostName {jump['address']}\n  Port {jump['port']}\n"
                  f"  User {jump['admin_user']}\n  IdentityFile {jump['admin_key']}\n"
                  f"Host *\n  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n"
                  f"  IdentitiesOnly yes\n  BatchMode yes\n")
    argv = ["ssh", "-F", config, "-i", key, "-J", "jumphost", "-p", str(port), "root@localhost", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_reverse_tunnel_through_the_real_jumphost(fleet, tmp_path):
    key = str(tmp_path / "provisioning")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with open(key + ".pub") as handle:
        provisioning_pub = handle.read()
    # the keepalive pair from the block this simulator holds: a pair from the ephemeral range can be taken by any
    # outgoing connection before autossh binds it (seen under load)
    port, keepalive = free_ports("127.0.0.1", 1)[0], fleet.jumphost["keepalive_port_base"] + 0
    _install_tunnel(fleet, "mlinux-02", port, keepalive, provisioning_pub)
    wait_until(lambda: fleet.live("mlinux-02")["tunnel_status"] == "up", 30, "tunnel up")
    device = fleet.device("mlinux-02")
    reached = _ssh_through_jumphost(fleet, port, device, key, "mts-io-sysfs show mac-eth")
    assert reached.returncode == 0, reached.stderr
    assert reached.stdout.strip().lower() == device["mac"]
    listening = fleet.jumphost_run(f"ss -Hltn 'sport = :{port}'").stdout
    assert "127.0.0.1" in listening or "[::1]" in listening
    # enabled at boot: after a power cycle the tunnel comes back by itself
    fleet.power_cycle("mlinux-02")
    wait_until(lambda: fleet.live("mlinux-02")["phase"] != "up", 10, "reboot started")
    fleet.wait_state("mlinux-02", "mlinux", timeout=30)
    wait_until(lambda: fleet.live("mlinux-02")["tunnel_status"] == "up", 30, "tunnel up after reboot")
    again = _ssh_through_jumphost(fleet, port, device, key, "cat /etc/hostname")
    assert (again.returncode, again.stdout) == (0, "mtcap\n"), again.stderr


def test_tunnel_refused_port_is_reported(fleet, tmp_path):
    # the keepalive pair from the block this simulator holds: a pair from the ephemeral range can be taken by any
    # outgoing connection before autossh binds it (seen under load)
    port, keepalive = free_ports("127.0.0.1", 1)[0], fleet.jumphost["keepalive_port_base"] + 2
    _install_tunnel(fleet, "mlinux-01", port, keepalive, "")
    wait_until(lambda: fleet.live("mlinux-01")["tunnel_status"] == "up", 30, "tunnel up")
    # the gateway key may forward its own port only: point it at another one
    device = fleet.device("mlinux-01")
    password = device["credentials"]["mlinux"]["password"]
    client = login(device)
    try:
        other = port + 1 if port < 65000 else port - 1
        result = ssh_run(client, f"sudo -S -p '' sh -c \"sed -i 's/^REMOTE_PORT=.*/REMOTE_PORT={other}/' "
                         "/var/config/ssh_tunnel.default && /etc/init.d/ssh_tunnel restart\"",
                         stdin=f"{password}\n".encode())
        assert result.status == 0, result.stderr
    finally:
        client.close()
    refused = f"to remote forward to host localhost port {other}, but the request was denied"
    wait_until(lambda: refused in fleet.jumphost_run(f"cat {fleet.jumphost['log']}").stdout, 30, "refused forward")
    assert fleet.live("mlinux-01")["tunnel_status"] == "connecting"
    assert not fleet.jumphost_run(f"ss -Hltn 'sport = :{other}'").stdout.strip()


def test_keepalive_port_held_on_the_jumphost_leaves_the_tunnel_up(fleet):
    """A socket on the jumphost that happens to use the keepalive port (the keepalive ports 40000+ lie inside
    Linux's ephemeral range, so any outgoing connection may take one) breaks autossh's monitor loop, not the
    tunnel: ssh keeps its -R port, as OpenSSH does without ExitOnForwardFailure. (autossh would restart ssh at
    its next poll, ten minutes on; a restart of the tunnel brings the loop back at once.)"""
    # the keepalive pair from the block this simulator holds: a pair from the ephemeral range can be taken by any
    # outgoing connection before autossh binds it (seen under load)
    port, keepalive = free_ports("127.0.0.1", 1)[0], fleet.jumphost["keepalive_port_base"] + 4

    def hold_keepalive_port():  # the local end of a connection on the jumphost, as an ephemeral port would be
        server = socket.create_server(("127.0.0.1", 0))
        holder = socket.socket()
        holder.bind(("127.0.0.1", keepalive))
        holder.connect(server.getsockname())
        return server, holder
    server, holder = fleet.in_jumphost_network(hold_keepalive_port)
    try:
        _install_tunnel(fleet, "mlinux-01", port, keepalive, "", user="gw-mlinux-01-held")
        wait_until(lambda: fleet.live("mlinux-01")["tunnel_status"] == "up", 30, "tunnel up")
        # the monitor loop's -L reaches 127.0.0.1 on the jumphost, where sshd could not listen (::1 it could)
        assert not fleet.jumphost_run(f"ss -H4ltn 'sport = :{keepalive}'").stdout.strip(), "no monitor loop"
    finally:
        holder.close()
        server.close()
    device = fleet.device("mlinux-01")
    client = login(device)
    try:
        restart = ssh_run(client, "sudo -S -p '' /etc/init.d/ssh_tunnel restart",
                          stdin=f"{device['credentials']['mlinux']['password']}\n".encode())
        assert restart.status == 0, restart.stderr
    finally:
        client.close()

    def monitor_loop_listening():
        return fleet.jumphost_run(f"ss -H4ltn 'sport = :{keepalive}'").stdout.strip()
    wait_until(monitor_loop_listening, 30, "the monitor loop back after a restart")
    assert fleet.live("mlinux-01")["tunnel_status"] == "up"


def _listener(fleet, port):
    """The sshd process serving the tunnel's port on the jumphost, as ``ss`` names it."""
    return fleet.jumphost_run(f"ss -Hltnp 'sport = :{port}'").stdout.split("users:")[-1].strip()


def test_a_jumphost_restart_ends_every_session_and_the_tunnel_comes_back(fleet, tmp_path):
    """The simulator's jumphost restart is a reboot's: the tunnel's session ends, nothing answers for the time
    asked, and the unit's autossh (started with -f: it retries from the first failure on) dials in again."""
    key = str(tmp_path / "provisioning")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with open(key + ".pub") as handle:
        provisioning_pub = handle.read()
    port, keepalive = free_ports("127.0.0.1", 1)[0], fleet.jumphost["keepalive_port_base"] + 6
    _install_tunnel(fleet, "mlinux-02", port, keepalive, provisioning_pub, user="gw-mlinux-02-restart")
    before = wait_until(lambda: _listener(fleet, port), 30, "the tunnel listening on the jumphost")
    assert "sshd" in before, before
    fleet.restart_jumphost(down=2)
    wait_until(lambda: fleet.live("mlinux-02")["tunnel_status"] == "up" and _listener(fleet, port), 60,
               "the tunnel back after the jumphost's restart")
    assert _listener(fleet, port) != before  # a new session of a new sshd
    with open(fleet.jumphost["log"], errors="replace") as handle:
        log = handle.read()
    assert log.count("sim: jumphost restarting") == 1
    device = fleet.device("mlinux-02")
    reached = _ssh_through_jumphost(fleet, port, device, key, "mts-io-sysfs show mac-eth")
    assert (reached.returncode, reached.stdout.strip().lower()) == (0, device["mac"]), reached.stderr
