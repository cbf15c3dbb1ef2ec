"""The network side of a simulated device: HTTPS, SSH/SFTP and the reverse tunnel.

Listening sockets are created here (loopback addresses only) and closed on
every reboot together with every open connection, the way a rebooting box
drops them. The ``ssh_tunnel`` init script is emulated by a real asyncssh
client that authenticates to the jumphost with the device's RSA host key and
asks for ``-R PORT:localhost:22`` (and the autossh ``-M`` monitor port).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import posixpath
import shlex
import socket
from typing import TYPE_CHECKING, Any

import asyncssh
from aiohttp import web

from . import keys
from .mpower import build_app
from .shell import Io, Output, Session, run_line
from .vfs import VfsError

if TYPE_CHECKING:
    from .device import Device

MAX_AUTH_TRIES = 6
# autossh tests its monitor loop every AUTOSSH_POLL seconds (600 by default); shorter here, so that a run sees the
# restart that follows a failed loop
AUTOSSH_POLL_S = 10.0
DEVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def in_private_network_namespace() -> bool:
    """True inside a named network namespace (``ip netns add``, under /run/netns), as the bench test makes them."""
    try:
        own = os.stat("/proc/self/ns/net")
        named = [os.stat(os.path.join("/run/netns", name)) for name in os.listdir("/run/netns")]
    except OSError:
        return False
    return any((each.st_dev, each.st_ino) == (own.st_dev, own.st_ino) for each in named)


def open_listener(address: str, port: int) -> socket.socket:
    """A listening TCP socket on a loopback address, or any address inside a bench test's own namespace."""
    if not ipaddress.ip_address(address).is_loopback and not in_private_network_namespace():
        raise ValueError(f"refusing to listen on non-loopback address {address}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ChannelStdin:
    """Standard input from an SSH channel, read only as far as a command needs."""

    def __init__(self, reader: asyncssh.SSHReader):
        self._reader = reader

    async def readline(self) -> bytes:
        try:
            return await self._reader.readline()
        except (asyncssh.Error, asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
            return b""

    async def read_all(self) -> bytes:
        try:
            return await self._reader.read()
        except (asyncssh.Error, asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
            return b""


class DeviceSSHServer(asyncssh.SSHServer):
    """Authentication against the device's own accounts and authorized_keys."""

    def __init__(self, services: "DeviceServices"):
        self._services = services
        self._device = services.device
        self._conn: asyncssh.SSHServerConnection | None = None
        self._failures = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._services.ssh_connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self._services.ssh_connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def _failed(self, username: str, method: str) -> None:
        self._failures += 1
        self._device.log("ssh-auth-failed", username=username, method=method)
        if self._failures >= MAX_AUTH_TRIES and self._conn is not None:
            self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE,
                                  "Too many authentication failures")

    def validate_password(self, username: str, password: str) -> bool:
        if username in self._device.fs.accounts and self._device.check_password(username, password):
            return True
        self._failed(username, "password")
        return False

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        account = self._device.fs.accounts.get(username)
        if account is not None:
            path = posixpath.join(account.home, ".ssh/authorized_keys")
            try:
                text = self._device.fs.read_text(path)
            except VfsError:
                text = ""
            wanted = key.export_public_key("openssh").split()[:2]
            for line in text.splitlines():
                parts = line.split()
                for i in range(len(parts) - 1):
                    if parts[i:i + 2] == [p.decode() for p in wanted]:
                        return True
        self._failed(username, "publickey")
        return False


class DeviceSFTPServer(asyncssh.SFTPServer):
    """SFTP on the device filesystem: device paths, permissions, space, faults."""

    def __init__(self, chan: asyncssh.SSHServerChannel, services: "DeviceServices"):
        super().__init__(chan)
        self._services = services
        self._fs = services.device.fs
        self._user = chan.get_extra_info("username")
        account = self._fs.accounts.get(self._user)
        self._home = account.home if account else "/"
        self._budget: dict[int, int] = {}

    def _device_path(self, path: bytes) -> str:
        text = path.decode("utf-8", "surrogateescape") or "."
        return text if text.startswith("/") else posixpath.join(self._home, text)

    def map_path(self, path: bytes) -> bytes:
        try:
            return self._fs.host_path(self._device_path(path)).encode("utf-8", "surrogateescape")
        except VfsError as exc:
            raise asyncssh.SFTPNoSuchFile(exc.strerror) from None

    def reverse_map_path(self, path: bytes) -> bytes:
        root = self._fs.root.encode()
        if path == root:
            return b"/"
        if path.startswith(root + b"/"):
            return path[len(root):]
        raise asyncssh.SFTPNoSuchFile("No such file")

    def realpath(self, path: bytes) -> bytes:
        try:
            return self._fs.resolve(self._device_path(path)).encode("utf-8", "surrogateescape")
        except VfsError as exc:
            raise asyncssh.SFTPNoSuchFile(exc.strerror) from None

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        device_path = self._device_path(path)
        writing = bool(pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT))
        try:
            if writing:
                self._fs.check_create(self._user, device_path)
            else:
                self._fs.check_read(self._user, device_path)
        except VfsError as exc:
            if exc.errno == 13:
                raise asyncssh.SFTPPermissionDenied(exc.strerror) from None
            raise asyncssh.SFTPNoSuchFile(exc.strerror) from None
        created = writing and not self._fs.exists(device_path)
        file_obj = super().open(path, pflags, attrs)
        if writing:
            canonical = self._fs.resolve(device_path)
            if created:
                self._fs.set_owner(canonical, self._user, self._fs.accounts[self._user].group
                                   if self._user in self._fs.accounts else self._user)
            self._budget[id(file_obj)] = self._fs.free_bytes(canonical) + os.fstat(file_obj.fileno()).st_size
            self._services.device.log("sftp-open", user=self._user, path=canonical)
        return file_obj

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        budget = self._budget.get(id(file_obj))
        if budget is not None and offset + len(data) > budget:
            raise asyncssh.SFTPFailure("No space left on device")
        if self._services.count_upload(len(data)):
            raise asyncssh.SFTPConnectionLost("connection dropped by the simulator (drop_upload_after)")
        return super().write(file_obj, offset, data)

    def close(self, file_obj: object) -> None:
        self._budget.pop(id(file_obj), None)
        super().close(file_obj)

    def exit(self) -> None:
        # OpenSSH's scp (SFTP mode) exits 1 unless the subsystem reports an exit status.
        try:
            self.channel.exit(0)
        except (OSError, asyncssh.Error):
            pass


class DeviceServices:
    """Starts and stops what a device serves; owns its connections and its tunnel."""

    def __init__(self, device: "Device"):
        self.device = device
        device.services = self
        self.ssh_connections: set[Any] = set()
        self._https_runner: web.AppRunner | None = None
        self._ssh_acceptor: Any = None
        self._tunnel_task: asyncio.Task | None = None
        self._tunnel_conn: asyncssh.SSHClientConnection | None = None
        self._uploaded = 0
        self.tunnel_running = False

    # --- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        device = self.device
        if device.firmware == "aep":
            runner = web.AppRunner(build_app(device), access_log=None, handle_signals=False,
                                   shutdown_timeout=0.1)
            await runner.setup()
            site = web.SockSite(runner, open_listener(device.address, device.https_port),
                                ssl_context=keys.server_ssl_context(device.cert_path, device.cert_key_path))
            await site.start()
            self._https_runner = runner
        if device.ssh_enabled:
            host_key = await self._host_key()
            self._ssh_acceptor = await asyncssh.create_server(
                lambda: DeviceSSHServer(self),
                sock=open_listener(device.address, device.listen_ssh_port),
                server_host_keys=[host_key],
                process_factory=self._handle_process,
                sftp_factory=lambda chan: DeviceSFTPServer(chan, self),
                allow_scp=True,
                encoding=None,
                login_timeout=30,
                keepalive_interval=0,
                server_version="OpenSSH_8.4",
            )

    async def _host_key(self) -> asyncssh.SSHKey:
        device = self.device
        if not device.host_key:  # made in a thread: the event loop serves every other unit meanwhile
            await asyncio.to_thread(device._new_host_key,  # pylint: disable=protected-access
                                    f"admin@{device.product.product_type}")
        return keys.private_key(device.host_key)

    async def stop(self, reason: str) -> None:
        await self.tunnel_stop()
        # the connections go first: since Python 3.12 a server's wait_closed() waits for every connection it
        # accepted, and a client waiting on the reboot's command would hold the reboot until it timed out
        acceptor, self._ssh_acceptor = self._ssh_acceptor, None
        if acceptor is not None:
            acceptor.close()
        for conn in list(self.ssh_connections):
            conn.abort()
        self.ssh_connections.clear()
        if acceptor is not None:
            await acceptor.wait_closed()
        if self._https_runner is not None:
            await self._https_runner.cleanup()
            self._https_runner = None
        self.device.log("down", reason=reason)

    # --- SSH sessions ------------------------------------------------------------

    async def _handle_process(self, process: asyncssh.SSHServerProcess) -> None:
        device = self.device
        user = process.get_extra_info("username")
        account = device.fs.accounts.get(user)
        home = account.home if account else "/"
        session = Session(device.fs, device, user, cwd=home if device.fs.exists(home) else "/",
                          env={"HOME": home, "USER": user, "LOGNAME": user, "PATH": DEVICE_PATH,
                               "SHELL": "/bin/sh"},
                          hostname=device.product.product_type)
        io = Io(ChannelStdin(process.stdin), Output(process.stdout.write), Output(process.stderr.write))
        status = 0
        try:
            if process.command is not None:
                device.log("ssh-exec", user=user, command=process.command)
                status = await run_line(session, process.command, io)
            else:
                status = await self._interactive(session, process, io)
        except (asyncssh.Error, BrokenPipeError, ConnectionError):
            return
        except Exception as exc:  # a bug in the simulator must not look like a device answer
            device.log("shell-error", error=repr(exc))
            io.stderr.write(f"simulator: internal error: {exc!r}\n")
            status = 70
        try:
            process.exit(status)
        except (OSError, asyncssh.Error):
            pass

    async def _interactive(self, session: Session, process: asyncssh.SSHServerProcess, io: Io) -> int:
        prompt = f"{session.user}@{session.hostname}:~$ ".encode()
        status = 0
        while True:
            process.stdout.write(prompt)
            line = await io.stdin.readline()
            if not line:
                return status
            text = line.decode("utf-8", "replace").strip()
            if text in ("exit", "logout"):
                return status
            if text:
                status = await run_line(session, text, io)

    def count_upload(self, size: int) -> bool:
        """Count uploaded bytes; True when the drop-mid-upload fault fires (once)."""
        knob = self.device.knobs.drop_upload_after
        if not knob:
            return False
        self._uploaded += size
        if self._uploaded >= knob:
            self.device.knobs.drop_upload_after = 0
            self._uploaded = 0
            self.device.log("fault", detail="connection dropped mid-upload")
            for conn in list(self.ssh_connections):
                conn.abort()
            return True
        return False

    # --- the ssh_tunnel init script ------------------------------------------------------

    def _tunnel_config(self) -> tuple[dict[str, str] | None, str]:
        fs = self.device.fs
        try:
            text = fs.read_text("/etc/default/ssh_tunnel")
        except VfsError:
            return None, "/etc/default/ssh_tunnel: No such file or directory"
        config: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            name, _sep, value = line.partition("=")
            try:
                words = shlex.split(value)
            except ValueError:
                return None, f"/etc/default/ssh_tunnel: cannot parse {name}"
            config[name.strip()] = " ".join(words)
        return config, ""

    async def tunnel_init_script(self, action: str, io: Io) -> int:
        config, problem = self._tunnel_config()
        if config is None:
            io.stderr.write(problem + "\n")
            return 1
        daemon = config.get("DAEMON", "")
        if not daemon or not self.device.fs.exists(daemon) or not self.device.fs.may("root", daemon, 1):
            return 0
        if action == "start":
            return await self.tunnel_start(io)
        if action == "stop":
            await self.tunnel_stop()
            return 0
        if action in ("restart", "reload", "force-reload"):
            detached = "do_restart" in self._init_script_text()
            if detached:
                asyncio.get_running_loop().create_task(self._restart_later())
                return 0
            await self.tunnel_stop()
            return await self.tunnel_start(io)
        if action == "do_restart":
            await self.tunnel_stop()
            return await self.tunnel_start(io)
        if action == "status":
            io.stdout.write("autossh is running\n" if self.tunnel_running else "autossh is not running\n")
            return 0 if self.tunnel_running else 3
        io.stderr.write("Usage: /etc/init.d/ssh_tunnel {start|stop|restart|status}\n")
        return 1

    def _init_script_text(self) -> str:
        try:
            return self.device.fs.read_text("/etc/init.d/ssh_tunnel")
        except VfsError:
            return ""

    async def _restart_later(self) -> None:
        await asyncio.sleep(0.5)
        await self.tunnel_stop()
        await self.tunnel_start()

    async def tunnel_start(self, io: Io | None = None) -> int:
        io = io or Io(None, Output(), Output())  # type: ignore[arg-type]
        if self.tunnel_running:
            return 0
        config, problem = self._tunnel_config()
        if config is None:
            io.stderr.write(problem + "\n")
            return 1
        for required in ("LOCAL_PORT", "REMOTE_HOST", "REMOTE_PORT", "REMOTE_USER"):
            if not config.get(required):
                io.stderr.write(f"ssh_tunnel: {required} is not set in /etc/default/ssh_tunnel\n")
                return 1
        try:
            plan = self._tunnel_plan(config)
        except ValueError as exc:
            io.stderr.write(f"ssh_tunnel: {exc}\n")
            return 1
        self.tunnel_running = True
        self.device.tunnel_status = "connecting"
        self._tunnel_task = asyncio.get_running_loop().create_task(self._tunnel_loop(plan))
        self.device.log("tunnel-start", remote=f"{plan['user']}@{plan['host']}:{plan['port']}",
                        remote_port=plan["remote_port"])
        return 0

    def _tunnel_plan(self, config: dict[str, str]) -> dict[str, Any]:
        args = shlex.split(config.get("DAEMON_ARGS", ""))
        identities = []
        monitor = None
        port = int(config.get("SSH_PORT") or 22)
        i = 0
        while i < len(args):
            if args[i] in ("-M", "-i", "-p", "-o") and i + 1 < len(args):
                if args[i] == "-M":
                    monitor = int(args[i + 1])
                elif args[i] == "-i":
                    identities.append(args[i + 1])
                elif args[i] == "-p":
                    port = int(args[i + 1])
                i += 2
                continue
            i += 1
        if config.get("SSH_KEY"):
            identities.append(config["SSH_KEY"])
        keys_found = []
        for path in identities:
            for candidate in (path, path[:-4] if path.endswith(".pub") else None):
                if not candidate:
                    continue
                try:
                    keys_found.append(keys.private_key(self.device.fs.read_bytes(candidate)))
                    break
                except (VfsError, asyncssh.KeyImportError):
                    continue
        if not keys_found:
            raise ValueError("no usable identity (-i / SSH_KEY)")
        host = config["REMOTE_HOST"]
        try:
            if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
                raise ValueError(f"REMOTE_HOST {host} is not a loopback address; the simulator only "
                                 "connects to loopback")
        except OSError:
            raise ValueError(f"REMOTE_HOST {host} does not resolve") from None
        return {"host": host, "port": port, "user": config["REMOTE_USER"], "keys": keys_found,
                "remote_port": int(config["REMOTE_PORT"]), "local_port": int(config["LOCAL_PORT"]),
                "monitor": monitor}

    async def _tunnel_loop(self, plan: dict[str, Any]) -> None:
        device = self.device
        delay = 0.2
        local_port = device.listen_ssh_port if plan["local_port"] == 22 else plan["local_port"]
        while self.tunnel_running:
            conn = None
            try:
                conn = await asyncssh.connect(plan["host"], plan["port"], username=plan["user"],
                                              client_keys=plan["keys"], known_hosts=None,
                                              agent_path=None, config=None, keepalive_interval=30,
                                              connect_timeout=10, preferred_auth="publickey")
                self._tunnel_conn = conn
                await conn.forward_remote_port("localhost", plan["remote_port"], device.address, local_port)
                monitor_error = await self._monitor_loop(conn, plan["monitor"], local_port) \
                    if plan["monitor"] else None
                device.tunnel_status = "up"
                device.log("tunnel-up", remote_port=plan["remote_port"])
                delay = 0.2
                if monitor_error:
                    # ssh without ExitOnForwardFailure keeps the session and its -R port; autossh restarts ssh
                    # when its next test of the monitor loop fails
                    device.log("tunnel-error", error=monitor_error)
                    try:
                        await asyncio.wait_for(conn.wait_closed(), AUTOSSH_POLL_S)
                    except asyncio.TimeoutError:
                        conn.abort()
                        device.log("tunnel-down", reason="autossh restarts ssh: monitor loop failed")
                        continue
                await conn.wait_closed()
                device.tunnel_status = "connecting"
                device.log("tunnel-down")
            except asyncio.CancelledError:
                if conn is not None:
                    conn.abort()
                raise
            except (asyncssh.Error, asyncssh.ChannelListenError, OSError) as exc:
                message = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, asyncssh.ChannelListenError):
                    message = f"remote port forwarding failed for listen port {plan['remote_port']}"
                device.tunnel_status = f"error: {message}"
                device.log("tunnel-error", error=message)
                if conn is not None:
                    conn.abort()
            self._tunnel_conn = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _monitor_loop(self, conn: asyncssh.SSHClientConnection, monitor: int, local_port: int) -> str | None:
        """autossh ``-M p``: ``-R p`` back to the gateway and ``-L p:127.0.0.1:p`` to the jumphost, then test
        data around the loop; what went wrong, or None. A jumphost that refuses either leg (say another socket
        holds port p there) makes autossh restart ssh at every poll."""
        try:
            await conn.forward_remote_port("localhost", monitor, self.device.address, local_port)
        except asyncssh.ChannelListenError:
            return f"remote port forwarding failed for listen port {monitor}"
        try:
            reader, writer = await asyncio.wait_for(conn.open_connection("127.0.0.1", monitor), 10)
            banner = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            return f"autossh monitor loop on port {monitor} failed: {exc}"
        if not banner.startswith(b"SSH-"):
            return f"autossh monitor loop on port {monitor} returned {banner[:40]!r}"
        return None

    async def tunnel_stop(self) -> None:
        self.tunnel_running = False
        task, self._tunnel_task = self._tunnel_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # pylint: disable=broad-except
                pass
        if self._tunnel_conn is not None:
            self._tunnel_conn.abort()
            self._tunnel_conn = None
        if self.device.tunnel_status != "stopped":
            self.device.log("tunnel-stop")
        self.device.tunnel_status = "stopped"
