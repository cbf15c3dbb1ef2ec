"""The jumphost: a real OpenSSH ``sshd`` on a loopback address.

It runs in a private mount namespace with its own copies of ``/etc`` and
``/home`` and its own ``/run``, so that what the jumphost modules do there (``useradd``, keys,
``sudo``) happens on the simulated jumphost and never on this machine. It has a
network namespace of its own, as a separate machine has: the reverse tunnels it
accepts listen on *its* ``localhost`` (``GatewayPorts no``), where a gateway's
own ``ssh -L`` of the autossh monitor loop, on this machine's loopback, cannot
collide with them, and where only a hop through the jumphost reaches them.
The simulator carries connections to the jumphost's address on this machine
into that namespace (:class:`NamespaceForwarder`). The admin account logs in
with its own key and, unless told otherwise, needs its password for ``sudo``,
as on a jumphost that does not hand out passwordless root.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .services import open_listener

SSHD = "/usr/sbin/sshd"
ADMIN_USER = "provision"

SSHD_CONFIG = """\
Port {port}
ListenAddress {address}
HostKey {dir}/ssh_host_ed25519_key
HostKey {dir}/ssh_host_rsa_key
PidFile /run/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
PrintLastLog no
StrictModes yes
MaxStartups 200:30:400
MaxSessions 64
ClientAliveInterval 15
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""

# Runs inside the new mount namespace: private /etc and /home, then the admin
# account, then sshd in the foreground. The shell stays PID 1 of the namespace, so that
# SIGUSR1 can restart the jumphost as a reboot would: every process of it killed (kill -1
# from PID 1 spares only PID 1), nothing listening for $JH/down-seconds, sshd started anew.
NAMESPACE_SCRIPT = """\
set -e
ip link set lo up
mount --bind "$JH/etc" /etc
mount --bind "$JH/home" /home
mkdir -p "$JH/mail" && mount --bind "$JH/mail" /var/mail
rm -rf "$JH/run" && mkdir -m 755 "$JH/run" && mount --bind "$JH/run" /run && mkdir -m 755 /run/sshd && mkdir -m 1777 /run/lock
if ! getent passwd {admin} >/dev/null; then
    useradd --create-home --shell /bin/bash {admin}
fi
chpasswd < "$JH/admin.chpasswd"
rm -f "$JH/admin.chpasswd"
printf '%s ALL=(ALL:ALL) {sudo_tag}ALL\\n' {admin} > /etc/sudoers.d/{admin}
chmod 0440 /etc/sudoers.d/{admin}
install -d -m 700 -o {admin} -g {admin} /home/{admin}/.ssh
install -m 600 -o {admin} -g {admin} "$JH/admin_key.pub" /home/{admin}/.ssh/authorized_keys
set +e
trap 'restarting=1; echo "sim: jumphost restarting" >&2; kill -KILL -1' USR1
trap 'kill -TERM -1; exit 0' TERM
while :; do
    restarting=
    {sshd} -D -e -f /etc/ssh/sshd_config &
    wait $!
    status=$?
    [ -n "$restarting" ] || exit $status
    sleep "$(cat "$JH/down-seconds")"
done
"""


@dataclass
class JumphostInfo:
    address: str
    port: int
    admin_user: str
    admin_key: str
    admin_password: str
    sudo_needs_password: bool
    keepalive_port_base: int
    known_hosts: str
    host_key_rsa: str
    host_key_ed25519: str
    pid: int
    state_dir: str
    log: str

    def as_dict(self) -> dict:
        return dict(vars(self))


CLONE_NEWNET = 0x40000000
# The gateways' autossh monitor loops listen at their own end (ssh -L K, autossh K+1) on this machine's loopback,
# which every simulator here shares: each simulator holds a block of keepalive ports of its own.
KEEPALIVE_BLOCKS = range(40000, 60000, 1000)
KEEPALIVE_LOCKS = "/run/lock/lorawan-conduit-sim-keepalive-{base}.lock"


def reserve_keepalive_block() -> tuple[int, int]:
    """(first port, lock fd) of a keepalive block no other simulator on this machine holds. The lock is held as
    long as the fd is open, and goes with the process however it ends."""
    for base in KEEPALIVE_BLOCKS:
        fd = os.open(KEEPALIVE_LOCKS.format(base=base), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return base, fd
    raise RuntimeError(f"every keepalive port block from {KEEPALIVE_BLOCKS.start} to {KEEPALIVE_BLOCKS.stop - 1} is "
                       "held by another simulator on this machine")


def _enter_network_namespace(path: str) -> None:
    """Move the calling thread into the network namespace at ``path`` (os.setns is Python 3.12+)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        setns = getattr(os, "setns", None)
        if setns is not None:
            setns(fd, CLONE_NEWNET)
        elif ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


class NamespaceForwarder:
    """Carries TCP connections to ``address:port`` on this machine to the same address and port inside another
    network namespace. Sockets are made in a thread that lives in that namespace (a socket stays in the namespace
    it was made in); the bytes are copied by this event loop."""

    def __init__(self, namespace: str, address: str, port: int):
        self.address = address
        self.port = port
        self._maker = ThreadPoolExecutor(1, thread_name_prefix="jumphost-netns", initializer=_enter_network_namespace,
                                         initargs=(namespace,))
        self._server: asyncio.base_events.Server | None = None
        self._pumps: set[asyncio.Task] = set()

    async def start(self, listener: socket.socket) -> None:
        self._server = await asyncio.start_server(self._carry, sock=listener)

    async def _carry(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            inner = await loop.run_in_executor(self._maker, socket.socket, socket.AF_INET, socket.SOCK_STREAM)
            inner.setblocking(False)
            await loop.sock_connect(inner, (self.address, self.port))
            reader, writer = await asyncio.open_connection(sock=inner)
        except OSError:
            client_writer.close()
            return
        pumps = [loop.create_task(_pump(client_reader, writer)), loop.create_task(_pump(reader, client_writer))]
        self._pumps.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._pumps.difference_update(pumps)
            for each in (writer, client_writer):
                each.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        self._maker.shutdown(wait=False)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction of a carried connection; an end of file is passed on as one (SSH clients half-close)."""
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        writer.close()


class Jumphost:
    """Start, stop and inspect the sshd jumphost (root only: it needs a mount namespace)."""

    def __init__(self, state_dir: str, address: str, port: int, sudo_password: bool = True):
        self.state_dir = state_dir
        self.address = address
        self.port = port
        self.sudo_password = sudo_password
        self.forwarder: NamespaceForwarder | None = None
        self.keepalive_port_base, self._keepalive_lock = reserve_keepalive_block()
        self.process: asyncio.subprocess.Process | None = None
        self.info: JumphostInfo | None = None
        self._log_handle = None

    async def start(self, timeout: float = 15.0) -> JumphostInfo:
        if os.geteuid() != 0:
            raise RuntimeError("the jumphost needs root (it runs sshd in its own mount namespace)")
        if not os.path.exists(SSHD):
            raise RuntimeError(f"{SSHD} is missing: install openssh-server (make setup does)")
        jh = self.state_dir
        os.makedirs(jh, exist_ok=True)
        if os.path.exists(os.path.join(jh, "etc")):
            shutil.rmtree(os.path.join(jh, "etc"))
        subprocess.run(["cp", "-a", "/etc", os.path.join(jh, "etc")], check=True)
        os.makedirs(os.path.join(jh, "home"), mode=0o755, exist_ok=True)
        os.chmod(jh, 0o755)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for key_type in ("ed25519", "rsa"):
            path = os.path.join(jh, f"ssh_host_{key_type}_key")
            if not os.path.exists(path):
                subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", f"jumphost-{key_type}",
                                "-f", path], check=True)
        admin_key = os.path.join(jh, "admin_key")
        if not os.path.exists(admin_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jumphost-admin",
                            "-f", admin_key], check=True)
        password = secrets.token_urlsafe(12) + "!a1"
        password_file = os.path.join(jh, "admin.chpasswd")
        with open(os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(f"{ADMIN_USER}:{password}\n")
        # where a jumphost's sshd reads it (the namespace's /etc), so the modules' default finds it
        self.sshd_config = os.path.join(jh, "etc", "ssh", "sshd_config")
        os.makedirs(os.path.dirname(self.sshd_config), exist_ok=True)
        with open(self.sshd_config, "w") as handle:
            handle.write(SSHD_CONFIG.format(port=self.port, address=self.address, dir=jh))
        check = subprocess.run([SSHD, "-t", "-f", self.sshd_config], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejected its configuration: {check.stderr.strip()}")
        log_path = os.path.join(jh, "sshd.log")
        self._log_handle = open(log_path, "ab")
        script = NAMESPACE_SCRIPT.format(admin=ADMIN_USER, sshd=SSHD,
                                         sudo_tag="" if self.sudo_password else "NOPASSWD: ")
        listener = open_listener(self.address, self.port)  # taken first: a port in use fails here, clearly
        # A PID namespace of its own, tied to this process: should the simulator die, even by SIGKILL, unshare
        # dies with it (pdeathsig), sends TERM to sshd (--kill-child), and every session goes with sshd.
        self.process = await asyncio.create_subprocess_exec(
            "setpriv", "--pdeathsig", "KILL", "--",
            "unshare", "--mount", "--propagation", "private", "--pid", "--net", "--fork", "--mount-proc",
            "--kill-child=TERM", "--",
            "/bin/sh", "-c", script,
            env={"JH": jh, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=self._log_handle,
            start_new_session=True)
        self.forwarder = NamespaceForwarder(await self._network_namespace(timeout), self.address, self.port)
        await self.forwarder.start(listener)
        await self._wait_ready(timeout)
        known_hosts = os.path.join(jh, "known_hosts")
        host_keys = {}
        with open(known_hosts, "w") as handle:
            for key_type in ("ed25519", "rsa"):
                with open(os.path.join(jh, f"ssh_host_{key_type}_key.pub")) as pub:
                    line = " ".join(pub.read().split()[:2])
                host_keys[key_type] = line
                host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
                handle.write(f"{host} {line}\n")
        self.info = JumphostInfo(address=self.address, port=self.port, admin_user=ADMIN_USER,
                                 admin_key=admin_key, admin_password=password,
                                 sudo_needs_password=self.sudo_password,
                                 keepalive_port_base=self.keepalive_port_base, known_hosts=known_hosts,
                                 host_key_rsa=host_keys["rsa"], host_key_ed25519=host_keys["ed25519"],
                                 pid=self.process.pid, state_dir=jh, log=log_path)
        return self.info

    async def _network_namespace(self, timeout: float) -> str:
        """The path of the jumphost's network namespace, once unshare has made it (its first act)."""
        assert self.process is not None
        path = f"/proc/{self.process.pid}/ns/net"
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + timeout
        while os.readlink(path) == own:
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the jumphost's namespaces were not made; see {self.state_dir}/sshd.log")
            await asyncio.sleep(0.005)
        return path

    async def _wait_ready(self, timeout: float) -> None:
        """Ready when the admin can log in (the namespace script has finished): OpenSSH's own client says so."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.returncode is not None:
                raise RuntimeError(f"sshd exited with {self.process.returncode}; see "
                                   f"{os.path.join(self.state_dir, 'sshd.log')}")
            probe = await asyncio.create_subprocess_exec(
                "ssh", "-F", "none", "-p", str(self.port), "-i", os.path.join(self.state_dir, "admin_key"),
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                f"{ADMIN_USER}@{self.address}", "true",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _out, err = await probe.communicate()
            if probe.returncode == 0:
                return
            last_error = err.decode(errors="replace").strip()
            await asyncio.sleep(0.05)
        raise RuntimeError(f"jumphost sshd not ready after {timeout:.0f} s: {last_error}")

    async def restart(self, down: float, timeout: float = 15.0) -> None:
        """Restart the jumphost as a reboot does: every session ends at once, nothing answers for ``down``
        seconds, then sshd listens again with the same keys, accounts and configuration. Returns once the admin
        can log in again."""
        assert self.process is not None
        with open(os.path.join(self.state_dir, "down-seconds"), "w") as handle:
            handle.write(f"{down:.3f}\n")
        log = os.path.join(self.state_dir, "sshd.log")
        started = _count_lines(log, "Server listening on ")
        with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as handle:
            init = int(handle.read().split()[0])  # unshare --fork's child: PID 1 of the jumphost
        os.kill(init, signal.SIGUSR1)
        deadline = time.monotonic() + down + timeout
        while _count_lines(log, "Server listening on ") <= started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the jumphost did not come back from its restart; see {log}")
            await asyncio.sleep(0.05)
        await self._wait_ready(timeout)

    async def stop(self) -> None:
        if self.forwarder is not None:
            await self.forwarder.stop()
        # the shell that runs sshd is PID 1 of the jumphost's PID namespace: when it ends, the kernel ends every
        # session with it (an SSH control master would otherwise keep talking to a jumphost that is gone)
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._keepalive_lock is not None:
            os.close(self._keepalive_lock)
            self._keepalive_lock = None


def _count_lines(path: str, start: str) -> int:
    with open(path, errors="replace") as handle:
        return sum(1 for line in handle if line.startswith(start))


def free_ports(address: str, count: int) -> list[int]:
    """Distinct ports free on address now. The sockets are held until all are picked: a port closed at once can
    come back from the next bind (seen in CI), and two services then clash."""
    held = [socket.socket() for _number in range(count)]
    try:
        for sock in held:
            sock.bind((address, 0))
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()
