"""The confinement suite: what a gateway's key may do on the real sshd jumphost once jumphost_register has
registered it, tried with the OpenSSH client the way an attacker holding the key (a stolen or opened unit) would.
Everything is refused but the gateway's own tunnel and keepalive ports.

Three gateways are registered: A (the attacker's key), B (a neighbour of the same organisation), C (an account of
another organisation, shared mode). Each attempt names what must be seen: the client's own words for a refusal,
and that nothing was left behind on the jumphost (a socket file, a changed key file)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading

import pytest

from simulator.harness import start_simulator, wait_until, write_inventory
from tests.functional.test_jumphost_register import gateway_ssh, new_key, run_module, serving_echo

REFUSED_LISTEN = "remote port forwarding failed"
REFUSED_OPEN = "administratively prohibited"
DENIED = "Permission denied"


@pytest.fixture(scope="module", name="fleet")
def _fleet(tmp_path_factory):
    from tests.conftest import _next_subnet
    workdir = str(tmp_path_factory.mktemp("confinement"))
    sim = start_simulator(["--subnet", _next_subnet(), "--jumphost"], workdir=workdir)
    inventory = write_inventory(sim, os.path.join(workdir, "inventory.yml"))
    keys = tmp_path_factory.mktemp("keys")
    gateways = {}
    for name, organisation, mode in (("a", "ttn-cf", "per_gateway"), ("b", "ttn-cf", "per_gateway"),
                                     ("c", "ttn-cs", "shared")):
        key, public = new_key(keys, name)
        layout = {"organisation": organisation, "account_mode": mode, "tunnel_port_min": 26500,
                  "keepalive_port_base": 46500}
        registered = run_module(inventory, "jumphost_register",
                                dict(layout, gateway=f"{organisation}-gw-{name}", host_key=public))
        assert not registered.get("failed"), registered
        gateways[name] = dict(registered, key=key, layout=layout)
    # the unit's side of the tunnel: what -R forwards to, on this machine's loopback
    with serving_echo() as echo_port:
        yield sim, inventory, gateways, echo_port
    sim.stop()


def _attacker(fleet, *args, user=None, key=None):
    sim, _inventory, gateways, _echo_port = fleet
    return gateway_ssh(sim, None, key or gateways["a"]["key"], user or gateways["a"]["user"], *args)


def _run(argv, stdin=None):
    return subprocess.run(argv, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)


def _socket_path(name):
    """A path in this machine's /tmp, which the jumphost shares (its private mounts are /etc, /home, /run)."""
    return os.path.join(tempfile.gettempdir(), "lorawan-confinement-%d-%s.sock" % (os.getpid(), name))


# (id, listen spec): every -R the attacker's key must not get; {P} its port, {K} its keepalive, {PB}/{KB} B's
LISTENS = [
    ("next-port", "{P1}:127.0.0.1:{E}"),
    ("port-below", "{P0}:127.0.0.1:{E}"),
    ("neighbours-port", "{PB}:127.0.0.1:{E}"),
    ("neighbours-keepalive", "{KB}:127.0.0.1:{E}"),
    ("keepalive-plus-one", "{K1}:127.0.0.1:{E}"),
    ("sshd-port", "22:127.0.0.1:{E}"),
    ("privileged-port", "1022:127.0.0.1:{E}"),
    ("port-chosen-by-sshd", "0:127.0.0.1:{E}"),
    ("own-port-other-address", "127.0.0.2:{P}:127.0.0.1:{E}"),
    ("own-port-every-address", "0.0.0.0:{P}:127.0.0.1:{E}"),
    ("own-port-ipv6", "[::1]:{P}:127.0.0.1:{E}"),
    ("unix-socket-in-tmp", "{S}:127.0.0.1:{E}"),
    ("unix-socket-at-the-old-lock-path", "/run/lock/lorawan-conduit-jumphost.lock:127.0.0.1:{E}"),
    ("unix-socket-at-the-lock-path", "/run/lorawan-conduit/jumphost.lock:127.0.0.1:{E}"),
    ("unix-socket-in-its-home", "/home/{U}/planted.sock:127.0.0.1:{E}"),
]

# (id, -W target): every connection the key must not open from the jumphost
OPENS = [
    ("own-tunnel-port", "127.0.0.1:{P}"),
    ("neighbours-keepalive", "127.0.0.1:{KB}"),
    ("jumphost-sshd", "{J}"),
    ("loopback-sshd", "127.0.0.1:22"),
    ("keepalive-by-name", "localhost:{K}"),
    ("keepalive-ipv6", "[::1]:{K}"),
    ("keepalive-other-address", "127.0.0.2:{K}"),
    ("keepalive-plus-one", "127.0.0.1:{K1}"),
]


def _values(fleet, name):
    sim, _inventory, gateways, echo_port = fleet
    mine, other = gateways["a"], gateways["b"]
    return {"P": mine["port"], "K": mine["keepalive_port"], "P1": mine["port"] + 1, "P0": mine["port"] - 1,
            "K1": mine["keepalive_port"] + 1, "PB": other["port"], "KB": other["keepalive_port"], "E": echo_port,
            "U": mine["user"], "S": _socket_path(name),
            "J": "%s:%d" % (sim.jumphost["address"], sim.jumphost["port"])}


def _jumphost_path(fleet, path):
    """Where a path of the jumphost's own /run or /home lies on this machine."""
    state = fleet[0].jumphost["state_dir"]
    for private in ("/run/", "/home/"):
        if path.startswith(private):
            return os.path.join(state, private.strip("/"), path[len(private):])
    return path


@pytest.mark.parametrize("name,spec", LISTENS, ids=[case[0] for case in LISTENS])
def test_the_key_listens_nowhere_else(fleet, name, spec):
    forward = spec.format(**_values(fleet, name))
    done = _run(_attacker(fleet, "-R", forward) + ["true"])
    assert done.returncode == 255 and REFUSED_LISTEN in done.stderr, done.stderr
    if forward.startswith("/"):  # the lock file itself may stand there; no socket may
        path = _jumphost_path(fleet, forward.split(":")[0])
        assert not os.path.lexists(path) or not stat.S_ISSOCK(os.lstat(path).st_mode), "a socket was left behind"


@pytest.mark.parametrize("name,target", OPENS, ids=[case[0] for case in OPENS])
def test_the_key_opens_nothing_else(fleet, name, target):
    done = _run(_attacker(fleet, "-W", target.format(**_values(fleet, name))))
    assert done.returncode == 255 and REFUSED_OPEN in done.stderr, done.stderr


@pytest.fixture(name="unix_server")
def _unix_server():
    """A Unix socket on the jumphost's filesystem that greets whoever connects: a forward to it must not reach it."""
    path = _socket_path("server")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)  # any account may connect: only sshd's refusal keeps the key out
    server.listen(4)
    reached = []

    def serve():
        while True:
            try:
                conn, _peer = server.accept()
            except OSError:
                return
            reached.append(True)
            with conn:
                conn.sendall(b"hello from the jumphost")

    threading.Thread(target=serve, daemon=True).start()
    yield path, reached
    server.close()
    os.unlink(path)


def _through_local_forward(fleet, forward_args, talk):
    """Start ``ssh -N`` with a local forward on a Unix socket of this machine, wait until it listens, let
    ``talk(connection)`` use it; the client's stderr."""
    folder = tempfile.mkdtemp(prefix="lorawan-confinement-")
    local = os.path.join(folder, "local.sock")
    client = subprocess.Popen(_attacker(fleet, "-N", *[arg.format(L=local) for arg in forward_args]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: os.path.exists(local) or client.poll() is not None, 30, "the local forward")
        assert client.poll() is None, client.communicate()[1]
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(20)
            connection.connect(local)
            talk(connection)
    finally:
        client.kill()
        _out, err = client.communicate(timeout=20)
        shutil.rmtree(folder)
    return err


def test_the_key_reaches_no_unix_socket_on_the_jumphost(fleet, unix_server):
    path, reached = unix_server
    received = []
    err = _through_local_forward(fleet, ["-L", "{L}:" + path], lambda conn: received.append(conn.recv(64)))
    assert received == [b""] and reached == [] and "open failed" in err, err


def test_the_key_gets_no_socks_proxy(fleet):
    address, port = fleet[0].jumphost["address"], fleet[0].jumphost["port"]
    received = []

    def socks5(conn):
        conn.sendall(b"\x05\x01\x00")
        assert conn.recv(2) == b"\x05\x00"
        conn.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(address) + port.to_bytes(2, "big"))
        while True:  # OpenSSH answers the request, then closes the connection when the channel is refused
            data = conn.recv(64)
            received.append(data)
            if not data:
                return

    err = _through_local_forward(fleet, ["-D", "{L}"], socks5)
    assert b"SSH-2.0" not in b"".join(received) and REFUSED_OPEN in err, err


def test_the_key_runs_no_command(fleet):
    done = _run(_attacker(fleet) + ["id"])
    assert done.returncode != 0 and "uid=" not in done.stdout
    assert "This account is currently not available." in done.stdout + done.stderr


def test_the_key_gets_no_terminal(fleet):
    done = _run(_attacker(fleet, "-tt"), stdin="id\nexit\n")
    assert "uid=" not in done.stdout and "PTY allocation request failed" in done.stderr


def test_the_key_gets_no_sftp(fleet):
    argv = _attacker(fleet, "-s") + ["sftp"]
    done = _run(argv, stdin="")
    assert "This account is currently not available." in done.stdout + done.stderr


def test_the_key_cannot_replace_its_own_key_file(fleet, tmp_path):
    sim, _inventory, gateways, _echo_port = fleet
    keys_file = _jumphost_path(fleet, gateways["a"]["authorized_keys"])
    with open(keys_file, "rb") as handle:
        before = handle.read()
    planted = tmp_path / "authorized_keys"
    planted.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJ5LZbQeH4k2k6ZV8GQvJbH2I0jHr1Qp1V5wq6qgI4o x\n")
    jump = sim.jumphost
    done = _run(["scp", "-O", "-i", gateways["a"]["key"], "-P", str(jump["port"]), "-o", "IdentitiesOnly=yes",
                 "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={jump['known_hosts']}",
                 "-o", "StrictHostKeyChecking=yes", str(planted),
                 f"{gateways['a']['user']}@{jump['address']}:.ssh/authorized_keys"])
    assert done.returncode != 0
    with open(keys_file, "rb") as handle:
        assert handle.read() == before


@pytest.mark.parametrize("account", ["neighbour", "other-organisation", "root", "admin", "nobody-such"])
def test_the_key_logs_in_as_no_other_account(fleet, account):
    _sim, _inventory, gateways, _echo_port = fleet
    user = {"neighbour": gateways["b"]["user"], "other-organisation": gateways["c"]["user"], "root": "root",
            "admin": fleet[0].jumphost["admin_user"], "nobody-such": "ttn-cf-gw-z"}[account]
    done = _run(_attacker(fleet, user=user) + ["true"])
    assert done.returncode == 255 and DENIED in done.stderr, done.stderr


def test_its_account_has_no_password_to_try(fleet):
    done = _run(_attacker(fleet, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,"
                          "keyboard-interactive") + ["true"])
    assert done.returncode == 255 and DENIED in done.stderr, done.stderr


def test_its_own_ports_work_and_registrations_go_on(fleet, tmp_path):
    """The control: the same key gets its own tunnel and keepalive ports, and after every attempt above (sockets
    at the lock's paths among them) the jumphost still registers gateways."""
    sim, inventory, gateways, echo_port = fleet
    mine = gateways["a"]
    tunnel = subprocess.Popen(_attacker(fleet, "-N", "-R", f"{mine['port']}:127.0.0.1:{echo_port}",
                                        "-R", f"{mine['keepalive_port']}:127.0.0.1:{echo_port}"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def answers():
            with sim.jumphost_connection(mine["port"], timeout=2) as through:
                through.sendall(b"own port")
                return through.recv(64) == b"own port"
        assert wait_until(answers, 60, "the tunnel")
        monitor = _run(_attacker(fleet, "-W", f"127.0.0.1:{mine['keepalive_port']}"), stdin="autossh monitor")
        assert monitor.stdout == "autossh monitor", monitor.stderr
    finally:
        tunnel.terminate()
        tunnel.communicate(timeout=20)
    _key, public = new_key(tmp_path, "d")
    later = run_module(inventory, "jumphost_register", dict(mine["layout"], gateway="ttn-cf-gw-d", host_key=public))
    assert not later.get("failed") and later["changed"], later
