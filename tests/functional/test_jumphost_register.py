"""jumphost_register through the real path: ansible runs the module on the sshd jumphost with become, then the
OpenSSH client uses the registered key the way a gateway's autossh would, and tries what it must not do."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

import pytest

from simulator.harness import collections_root, wait_until, write_inventory

ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


@pytest.fixture(scope="module")
def jumphost(tmp_path_factory):
    from tests.conftest import _next_subnet
    from simulator.harness import start_simulator
    workdir = str(tmp_path_factory.mktemp("jumphost"))
    sim = start_simulator(["--subnet", _next_subnet(), "--jumphost"], workdir=workdir)
    inventory = write_inventory(sim, os.path.join(workdir, "inventory.yml"))
    yield sim, inventory
    sim.stop()


@contextlib.contextmanager
def serving_echo():
    """A TCP echo server on loopback: what the tunnel forwards to, so traffic through it can be seen; its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve():
        while True:
            try:
                conn, _peer = server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def echo_server():
    with serving_echo() as port:
        yield port


def run_module(inventory: str, module: str, args: dict, check: bool = False, host: str = "jumphost",
               become: bool = True, timeout: float = 120) -> dict:
    """Run a module on ``host`` (the jumphost with become, unless told otherwise) as an ``ansible`` task; its result,
    from the ``tree`` callback's file, what ansible printed (``printed``) and its exit status (``rc``: the file
    leaves out ``failed``)."""
    with tempfile.TemporaryDirectory() as tree:
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root())
        argv = [ANSIBLE, "-i", inventory, host, "-t", tree, "-m", f"lorawan.conduit.{module}",
                "-a", json.dumps(args)] + (["--become"] if become else []) + (["--check"] if check else [])
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)
        assert os.path.exists(os.path.join(tree, host)), done.stdout + done.stderr
        with open(os.path.join(tree, host)) as handle:
            # warnings are printed, not kept
            return dict(json.load(handle), printed=done.stdout + done.stderr, rc=done.returncode)


def new_key(tmp_path, name: str) -> tuple[str, str]:
    path = str(tmp_path / name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path], check=True)
    with open(path + ".pub") as handle:
        return path, handle.read().strip()


def gateway_ssh(sim, tmp_path, key: str, user: str, *args: str, timeout: float = 20):
    """The OpenSSH client as the gateway: its key only, the jumphost's host key checked."""
    jump = sim.jumphost
    argv = ["ssh", "-i", key, "-p", str(jump["port"]), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={jump['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ExitOnForwardFailure=yes", "-l", user, *args, jump["address"]]
    return argv


def tunnel(inventory: str, layout: dict, gateway: str) -> dict:
    """What jumphost_tunnels says of one gateway ({} when it is not registered)."""
    listing = run_module(inventory, "jumphost_tunnels", dict(layout, gateways=[gateway]))
    return listing["tunnels"][0] if listing["tunnels"] else {}


def listening(inventory: str, layout: dict, gateway: str) -> dict | None:
    entry = tunnel(inventory, layout, gateway)
    return entry if entry.get("listening") else None


@pytest.mark.parametrize("mode,first_port", [("per_gateway", 26100), ("shared", 26200)])
def test_a_registered_key_opens_its_own_ports_and_nothing_else(jumphost, tmp_path, echo_server, mode, first_port):
    sim, inventory = jumphost
    organisation = f"ttn-{mode.replace('_', '')}"
    gateway = f"{organisation}-00-08-00-4a-26-f1"[:32]
    key, public = new_key(tmp_path, "gateway")
    layout = {"organisation": organisation, "account_mode": mode, "tunnel_port_min": first_port,
              "keepalive_port_base": first_port + 20000}
    registered = run_module(inventory, "jumphost_register", dict(layout, gateway=gateway, host_key=public))
    assert registered["changed"], registered
    port, keepalive, user = registered["port"], registered["keepalive_port"], registered["user"]
    assert port == first_port and keepalive == first_port + 20000
    # ports an outgoing connection on the jumphost may take: this kernel's range and reservations decide
    with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
        low, high = (int(value) for value in handle.read().split())
    with open("/proc/sys/net/ipv4/ip_local_reserved_ports") as handle:
        reserved = [[int(end) for end in part.split("-")] for part in handle.read().strip().split(",") if part]
    exposed = [candidate for candidate in (port, keepalive, keepalive + 1) if low <= candidate <= high
               and not any(part[0] <= candidate <= part[-1] for part in reserved)]
    assert registered["unreserved_ports"] == exposed
    warned = registered["printed"].replace("\n", " ").count("net.ipv4.ip_local_reserved_ports=")
    assert warned == (1 if exposed else 0), registered["printed"]

    # the gateway's tunnel, as autossh -M runs it: -R port, and the monitor loop -R/-L on the keepalive port.
    # The -L end listens on a Unix socket: a loopback port in the ephemeral range may be some other test's
    # outgoing connection at that moment (CI once saw "connection refused" there).
    monitor_socket = tmp_path / "monitor.sock"
    forward = subprocess.Popen(gateway_ssh(
        sim, tmp_path, key, user, "-N", "-R", f"{port}:127.0.0.1:{echo_server}",
        "-R", f"{keepalive}:127.0.0.1:{echo_server}", "-L", f"{monitor_socket}:127.0.0.1:{keepalive}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        listed = wait_until(lambda: monitor_socket.exists() and listening(inventory, layout, gateway), 90,
                            "tunnel listening")
        assert listed["keepalive_listening"] and listed["port_held_by_other_uid"] == []
        with sim.jumphost_connection(port) as through:
            through.sendall(b"over the tunnel")
            assert through.recv(64) == b"over the tunnel"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as monitor:
            monitor.settimeout(5)
            monitor.connect(str(monitor_socket))
            monitor.sendall(b"autossh monitor")  # -L keepalive -> jumphost keepalive -> -R -> echo
            assert monitor.recv(64) == b"autossh monitor"
    finally:
        forward.terminate()
        forward.communicate(timeout=10)

    other = subprocess.run(gateway_ssh(sim, tmp_path, key, user, "-N", "-R", f"{port + 50}:127.0.0.1:{echo_server}"),
                           capture_output=True, text=True, timeout=30, check=False)
    assert other.returncode == 255
    assert f"remote port forwarding failed for listen port {port + 50}" in other.stderr

    command = subprocess.run(gateway_ssh(sim, tmp_path, key, user) + ["id"], capture_output=True, text=True,
                             timeout=30, check=False)
    assert command.returncode != 0 and "uid=" not in command.stdout
    assert "This account is currently not available." in command.stdout + command.stderr

    shell = subprocess.run(gateway_ssh(sim, tmp_path, key, user, "-tt"), input="id\nexit\n", capture_output=True,
                           text=True, timeout=30, check=False)
    assert "uid=" not in shell.stdout
    assert "PTY allocation request failed" in shell.stderr

    # a forward to anything but its own keepalive port is refused (-W asks for the same channel -L would)
    elsewhere = subprocess.run(gateway_ssh(sim, tmp_path, key, user, "-W", f"127.0.0.1:{echo_server}"),
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert elsewhere.returncode == 255 and "administratively prohibited" in elsewhere.stderr, elsewhere.stderr


def test_removal_ends_the_tunnel_and_the_key_stops_working(jumphost, tmp_path, echo_server):
    sim, inventory = jumphost
    key, public = new_key(tmp_path, "gateway")
    gateway = "ttn-rm-00-08-00-4a-26-f2"
    layout = {"organisation": "ttn-rm", "account_mode": "shared", "tunnel_port_min": 26300,
              "keepalive_port_base": 46300}
    options = dict(layout, gateway=gateway)
    registered = run_module(inventory, "jumphost_register", dict(options, host_key=public))
    port, user = registered["port"], registered["user"]
    forward = subprocess.Popen(gateway_ssh(sim, tmp_path, key, user, "-N", "-R", f"{port}:127.0.0.1:{echo_server}"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: listening(inventory, layout, gateway), 90, "tunnel listening")
        planned = run_module(inventory, "jumphost_register", dict(options, state="absent"), check=True)
        assert planned["changed"] and listening(inventory, layout, gateway)
        removed = run_module(inventory, "jumphost_register", dict(options, state="absent"))
        assert removed["changed"] and removed["port"] == port
        forward.wait(timeout=20)  # the jumphost ended the tunnel's session
    finally:
        forward.kill()
        forward.communicate()
    assert tunnel(inventory, layout, gateway) == {}
    with pytest.raises(OSError):
        sim.jumphost_connection(port, timeout=2).close()
    again = subprocess.run(gateway_ssh(sim, tmp_path, key, user, "-N", "-R", f"{port}:127.0.0.1:{echo_server}"),
                           capture_output=True, text=True, timeout=30, check=False)
    assert again.returncode == 255 and "Permission denied" in again.stderr


def test_ports_other_key_lines_claim_and_a_shared_uid_are_seen_on_the_real_jumphost(jumphost, tmp_path):
    """A hand-made account whose key may listen on the range's first port, and a copy of a gateway account with
    its UID: the next registration skips the port, the copied account's gateway is refused with both names."""
    sim, inventory = jumphost
    _key, public = new_key(tmp_path, "legacy")
    layout = {"organisation": "ttn-clash", "account_mode": "per_gateway", "tunnel_port_min": 26600,
              "keepalive_port_base": 46600}
    sim.jumphost_run("useradd --create-home --uid 1777 legacy-ops && install -d -o legacy-ops -m 700 "
                     "/home/legacy-ops/.ssh && echo 'permitlisten=\"localhost:26600\" %s' > "
                     "/home/legacy-ops/.ssh/authorized_keys" % public)
    first = run_module(inventory, "jumphost_register", dict(layout, gateway="ttn-clash-one", host_key=public))
    assert first["port"] == 26601, first
    sim.jumphost_run("useradd --non-unique --uid 26601 --gid ttn-clash-gateways ttn-clash-copy")
    again = run_module(inventory, "jumphost_register", dict(layout, gateway="ttn-clash-one", host_key=public))
    assert "shares UID 26601 with ttn-clash-copy" in again.get("msg", ""), again  # (the tree file drops "failed")
