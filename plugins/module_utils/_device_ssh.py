# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SSH session every device-side module uses (paramiko).

* Authentication is explicit: a key file and/or a password, the agent and
  ``~/.ssh`` keys only when asked (a full agent trips the unit's MaxAuthTries).
* Host keys: ``pin`` checks the key against the known one (and records it on
  first contact when none is known), ``ignore`` skips the check and must be
  asked for.
* ``sudo`` gets the password on standard input, never on a command line.
* Uploads stream in blocks over SFTP, report progress, and resume after a
  dropped connection from what already arrived; the caller verifies the
  result by checksum.
* Sockets can be bound to a bench NIC, or run through the jumphost: one SSH
  connection to it per process, shared by every unit reached that way, each
  unit a ``direct-tcpip`` channel to its reverse-tunnel port there; the
  jumphost's host key is pinned as the unit's is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import logging
import os
import select
import shlex
import socket
import threading
import time
import traceback

from ansible_collections.lorawan.conduit.plugins.module_utils._net import connect as net_connect
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import key_fingerprint, same_key

try:
    import paramiko
except ImportError:
    HAS_PARAMIKO = False
    PARAMIKO_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PARAMIKO = True
    PARAMIKO_IMPORT_ERROR = None
PARAMIKO_REQUIREMENT = ("paramiko", HAS_PARAMIKO, PARAMIKO_IMPORT_ERROR)
# paramiko logs what its transport threads meet (a unit that resets the connection while it reboots) and, with no
# handler, Python prints that on stderr; every such case reaches the stage as an exception and is said there
logging.getLogger("paramiko").addHandler(logging.NullHandler())

WINDOW_SIZE = 16 * 1024 * 1024
MAX_PACKET = 32768
UPLOAD_BLOCK = 32768
# Fewer, larger SFTP writes: OpenSSH's sftp-server takes messages up to 256 KiB.
SFTP_REQUEST_SIZE = 253952
RESUME_OVERLAP = 2 * WINDOW_SIZE
RECONNECT_WAIT = 30  # seconds an upload waits for a unit that went away mid-transfer


class DeviceSSHError(Exception):
    def __init__(self, message):
        super(DeviceSSHError, self).__init__(message)
        self.message = message

    def reason(self, label):
        """The message without the ``<label>: `` it starts with, for words that name the unit already."""
        prefix = label + ": "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message


class DeviceUnreachable(DeviceSSHError):
    """No SSH server answered (refused, timeout, reset before the banner)."""


class DeviceAuthError(DeviceSSHError):
    """The unit refused every credential offered."""


class HostKeyMismatch(DeviceSSHError):
    """The unit's host key is not the pinned one."""

    def __init__(self, message, seen):
        super(HostKeyMismatch, self).__init__(message)
        self.seen = seen


class SessionLost(DeviceSSHError):
    """The connection dropped while a command or transfer ran."""


class JumpFailed(DeviceSSHError):
    """The jumphost itself could not be used as the way in (it does not answer, refuses the login, or offers
    another host key than the pinned ones): nothing is known about the units behind it."""


class JumpHostKeyMismatch(JumpFailed):
    """The jumphost's host key is not a pinned one (not the unit's: nothing about the unit was re-flashed)."""


class TunnelClosed(DeviceUnreachable):
    """The jumphost answered, but nothing listens on the unit's tunnel port there (its tunnel is down)."""


class CommandResult:
    def __init__(self, status, stdout, stderr):
        self.status = status  # None: the session ended without an exit status (a reboot)
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self):
        return self.status == 0


def key_line(key):
    """``ssh-rsa AAAA...`` for a paramiko key."""
    return "%s %s" % (key.get_name(), key.get_base64())


class DeviceSession:
    """One SSH connection to a unit (see module docstring). ``host_key``: the key, or the keys, the unit may
    offer (a ledger pins all of a unit's host keys; the client negotiates one of them)."""

    def __init__(self, address, port=22, username="root", password=None, key_filename=None, allow_agent=False,
                 look_for_keys=False, host_key=None, host_key_policy="pin", timeout=10.0, interface=None,
                 label=None, jump=None):
        if not HAS_PARAMIKO:
            raise DeviceSSHError("the Python library paramiko is required")
        if host_key_policy not in ("pin", "ignore"):
            raise ValueError("host_key_policy must be pin or ignore")
        self.address = address
        self.port = port
        self.username = username
        self.password = password
        self.key_filename = key_filename
        self.allow_agent = allow_agent
        self.look_for_keys = look_for_keys
        self.host_key = host_key
        self.host_key_policy = host_key_policy
        self.timeout = timeout
        self.interface = interface
        self.label = label or "%s:%d" % (address, port)
        self.jump = jump  # a JumpHost: address and port are then the unit's tunnel end on the jumphost
        self.transport = None
        self.host_key_seen = None
        self._sftp = None

    # --- connection ------------------------------------------------------------------

    def connect(self):
        try:
            sock = self.jump.channel(self.address, self.port, self.timeout) if self.jump else \
                net_connect(self.address, self.port, self.timeout, self.interface)
        except (OSError, socket.timeout) as exc:
            raise DeviceUnreachable("%s: SSH not reachable (%s)" % (self.label, exc))
        transport = paramiko.Transport(sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET)
        options = transport.get_security_options()
        # AES-GCM first: one pass for cipher and integrity costs the least CPU per byte.
        options.ciphers = tuple(sorted(options.ciphers, key=lambda name: "gcm@" not in name))
        transport.banner_timeout = self.timeout
        transport.handshake_timeout = self.timeout
        try:
            transport.start_client(timeout=self.timeout)
        except (paramiko.SSHException, EOFError, OSError, socket.timeout) as exc:
            transport.close()
            raise DeviceUnreachable("%s: SSH handshake failed (%s)" % (self.label, exc or type(exc).__name__))
        seen = key_line(transport.get_remote_server_key())
        self.host_key_seen = seen
        pinned = [self.host_key] if isinstance(self.host_key, str) else list(self.host_key or [])
        if self.host_key_policy == "pin" and pinned and not any(same_key(seen, key) for key in pinned):
            transport.close()
            raise HostKeyMismatch(
                "%s: host key changed: the unit offers %s, the ledger has %s" % (
                    self.label, key_fingerprint(seen), ", ".join(key_fingerprint(key) for key in pinned)), seen)
        self._authenticate(transport)
        transport.set_keepalive(15)
        self.transport = transport
        return self

    def _authenticate(self, transport):
        tried = []
        keys = []
        if self.key_filename:
            keys.append(("key %s" % self.key_filename, _load_key(self.key_filename)))
        if self.allow_agent:
            keys.extend(("agent key", k) for k in paramiko.Agent().get_keys())
        if self.look_for_keys:
            for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
                path = os.path.expanduser("~/.ssh/" + name)
                if os.path.exists(path):
                    try:
                        keys.append(("key %s" % path, _load_key(path)))
                    except DeviceSSHError:
                        continue
        for label, key in keys:
            try:
                transport.auth_publickey(self.username, key)
                return
            except paramiko.AuthenticationException:
                tried.append(label)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                transport.close()
                raise DeviceAuthError("%s: the unit closed the connection during authentication after %s (%s); "
                                      "too many keys offered?" % (self.label, ", ".join(tried + [label]), exc))
        if self.password is not None:
            try:
                transport.auth_password(self.username, self.password)
                return
            except paramiko.AuthenticationException:
                tried.append("password")
            except (paramiko.SSHException, EOFError, OSError) as exc:
                transport.close()
                raise DeviceAuthError("%s: authentication failed (%s)" % (self.label, exc))
        transport.close()
        raise DeviceAuthError("%s: %s refused %s" % (self.label, self.username, ", ".join(tried) or
                                                     "login: no password or key given"))

    def close(self):
        if self._sftp is not None:
            try:
                self._sftp.close()
            except (OSError, EOFError, paramiko.SSHException):
                pass
            self._sftp = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    @property
    def connected(self):
        return self.transport is not None and self.transport.is_active()

    # --- commands ---------------------------------------------------------------------

    def run(self, command, stdin=None, timeout=60.0):
        """Run ``command``; the status is None when the session ended without one (a reboot)."""
        if not self.connected:
            raise SessionLost("%s: not connected" % self.label)
        try:
            channel = self.transport.open_session(timeout=self.timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout, stderr = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            # sshd may send the exit status before the last of the output: the output is complete at its EOF
            while not channel.eof_received:
                if channel.recv_ready():
                    stdout.extend(channel.recv(65536))
                elif channel.recv_stderr_ready():
                    stderr.extend(channel.recv_stderr(65536))
                elif channel.closed or not self.transport.is_active():
                    break
                elif time.monotonic() > deadline:
                    channel.close()
                    raise SessionLost("%s: %r did not finish within %d s" % (self.label, command, timeout))
                else:
                    select.select([channel], [], [], 0.5)
            while channel.recv_ready():
                stdout.extend(channel.recv(65536))
            while channel.recv_stderr_ready():
                stderr.extend(channel.recv_stderr(65536))
            while not (channel.exit_status_ready() or channel.closed or not self.transport.is_active()):
                if time.monotonic() > deadline:
                    channel.close()
                    raise SessionLost("%s: %r did not finish within %d s" % (self.label, command, timeout))
                channel.status_event.wait(0.5)
            status = channel.recv_exit_status() if channel.exit_status_ready() else None
            channel.close()
        except (socket.timeout, EOFError, OSError, paramiko.SSHException) as exc:
            reason = exc or type(exc).__name__
            raise SessionLost("%s: connection lost while running %r (%s)" % (self.label, command, reason))
        return CommandResult(status, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))

    def sudo(self, command, password=None, stdin=b"", timeout=60.0):
        """Run ``command`` as root: directly for root, else through ``sudo -S`` with the password on stdin."""
        if self.username == "root":
            return self.run(command, stdin=stdin or None, timeout=timeout)
        secret = self.password if password is None else password
        if secret is None:
            return self.run("sudo -n " + command, stdin=stdin or None, timeout=timeout)
        result = self.run("sudo -S -p '' " + command, stdin=secret.encode("utf-8") + b"\n" + (stdin or b""),
                          timeout=timeout)
        if result.status == 1 and ("incorrect password" in result.stderr or "Sorry, try again" in result.stderr):
            raise DeviceAuthError("%s: sudo refused the password for %s" % (self.label, self.username))
        return result

    def check(self, command, sudo=False, stdin=None, timeout=60.0):
        """Run and require status 0; return stdout."""
        result = self.sudo(command, stdin=stdin or b"", timeout=timeout) if sudo else \
            self.run(command, stdin=stdin, timeout=timeout)
        if result.status != 0:
            raise DeviceSSHError("%s: %r failed (%s): %s" % (
                self.label, command, "no exit status" if result.status is None else "status %d" % result.status,
                (result.stderr or result.stdout).strip()[-400:]))
        return result.stdout

    # --- files -------------------------------------------------------------------------

    def sftp(self):
        if self._sftp is None:
            self._sftp = paramiko.SFTPClient.from_transport(self.transport, window_size=WINDOW_SIZE,
                                                            max_packet_size=MAX_PACKET)
        return self._sftp

    def remote_size(self, path):
        try:
            return self.sftp().stat(path).st_size
        except IOError:
            return None

    def upload(self, local, remote, progress=None, retries=3, reconnect=None):
        """Stream ``local`` to ``remote``; after a dropped connection reconnect and go on from what arrived.

        ``reconnect`` is called to get a connected session again (default: this one, reconnected).
        Returns the number of attempts used.
        """
        size = os.path.getsize(local)
        attempt = 0
        offset = 0
        while True:
            attempt += 1
            try:
                if attempt > 1:
                    self._reconnect(reconnect)
                    # Pipelined writes may land out of order: anything within the
                    # last window before the drop can hold a hole, so resend it.
                    arrived = self.remote_size(remote) or 0
                    offset = max(0, min(arrived, size) - RESUME_OVERLAP)
                self._send(local, remote, offset, size, progress)
                return attempt
            except DeviceUnreachable as exc:  # from the reconnect: the unit went away, no attempt left can reach it
                raise SessionLost("%s: upload of %s broke off, and the unit did not answer again within %d s (%s)"
                                  % (self.label, os.path.basename(local), RECONNECT_WAIT,
                                     exc.reason(self.label)))
            except (socket.timeout, EOFError, OSError, paramiko.SSHException, SessionLost) as exc:
                if attempt > retries:
                    raise SessionLost("%s: upload of %s failed after %d attempts (%s)" % (
                        self.label, os.path.basename(local), attempt, exc or type(exc).__name__))

    def _reconnect(self, reconnect):
        self.close()
        deadline = time.monotonic() + RECONNECT_WAIT
        while True:
            try:
                if reconnect is not None:
                    reconnect(self)
                else:
                    self.connect()
                return
            except DeviceUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _send(self, local, remote, offset, size, progress):
        sftp = self.sftp()
        mode = "r+b" if offset else "wb"
        with open(local, "rb") as source:
            source.seek(offset)
            with sftp.open(remote, mode) as target:
                target.set_pipelined(True)
                target.MAX_REQUEST_SIZE = SFTP_REQUEST_SIZE
                if offset:
                    target.seek(offset)
                sent = offset
                while True:
                    block = source.read(UPLOAD_BLOCK * 8)
                    if not block:
                        break
                    target.write(block)
                    sent += len(block)
                    if progress is not None:
                        progress(sent, size)
        final = self.remote_size(remote)
        if final != size:
            raise SessionLost("%s: %s has %s bytes on the unit, %d sent" % (self.label, remote, final, size))

    def sha256(self, path, sudo=False):
        out = self.check("sha256sum %s" % shlex.quote(path), sudo=sudo, timeout=600)
        return out.split()[0] if out.split() else ""


class JumpHost:
    """The jumphost as the way in to units in the field: one SSH connection to it (made when first needed, made
    again when it dropped), shared by every session of this process that names the same jumphost, account and
    pins, so a batch of any size is one login there; each unit is a ``direct-tcpip`` channel to its tunnel port."""

    _shared = {}
    _shared_lock = threading.Lock()

    def __init__(self, address, port=22, username=None, key_filename=None, allow_agent=False, host_keys=(),
                 timeout=10.0, interface=None):
        self.label = "the jumphost %s:%d" % (address, port)
        self.host_keys = list(host_keys or [])
        self.session = DeviceSession(address, port=port, username=username, key_filename=key_filename,
                                     allow_agent=allow_agent, host_key=self.host_keys, host_key_policy="pin",
                                     timeout=timeout, interface=interface, label=self.label)
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, address, port=22, username=None, key_filename=None, allow_agent=False, host_keys=(),
               timeout=10.0, interface=None):
        key = (address, port, username, key_filename, allow_agent, tuple(sorted(host_keys or [])), interface)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(address, port, username, key_filename, allow_agent, host_keys, timeout,
                                       interface)
            return cls._shared[key]

    def _transport(self):
        with self._lock:
            if not self.session.connected:
                if not self.host_keys:
                    raise JumpHostKeyMismatch(
                        "%s: no host key of it is pinned (jump_host_keys): a unit in the field is reached only "
                        "through a jumphost known to be the organisation's. Give the keys its sshd offers (the "
                        "gateway's ledger record has them under jumphost.host_keys once its tunnel stage ran)"
                        % self.label)
                if not self.session.username:
                    raise JumpFailed("%s: no account to log in to it is given (jump_user)" % self.label)
                self.session.close()
                try:
                    self.session.connect()
                except (DeviceUnreachable, DeviceAuthError) as exc:
                    raise JumpFailed(exc.message)
                except HostKeyMismatch as exc:
                    raise JumpHostKeyMismatch(
                        "%s: host key changed: it offers %s, which is not one of jump_host_keys (%s); nothing was "
                        "sent to it. If the jumphost was rebuilt, pin its new keys" % (
                            self.label, key_fingerprint(exc.seen),
                            ", ".join(key_fingerprint(key) for key in self.host_keys)))
            return self.session.transport

    def channel(self, address, port, timeout):
        """A channel to ``address:port`` as the jumphost sees it (the unit's tunnel end), for a unit's session."""
        transport = self._transport()
        try:
            return transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0),
                                          window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET, timeout=timeout)
        except paramiko.ChannelException as exc:
            raise TunnelClosed("nothing answers on port %d of %s (%s): the unit's tunnel is down, or the account "
                               "there may not forward to it" % (port, self.label, exc.text or exc.code))
        except (paramiko.SSHException, EOFError, OSError, socket.timeout) as exc:
            raise JumpFailed("%s: the connection to it failed (%s)" % (self.label, exc or type(exc).__name__))


def _load_key(path):
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key_file(path)
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(str(exc))
        except IOError as exc:
            raise DeviceSSHError("cannot read key %s: %s" % (path, exc))
    raise DeviceSSHError("cannot load key %s: %s" % (path, errors[-1] if errors else "unknown format"))


def device_ssh_argument_spec():
    """The connection options of the modules that log in to an mLinux unit (fragment lorawan.conduit.device_ssh)."""
    return dict(
        address=dict(type="str", required=True),
        port=dict(type="int", default=22),
        bind_interface=dict(type="str"),
        username=dict(type="str", default="mtadm"),
        password=dict(type="str", no_log=True),
        key_file=dict(type="path"),
        allow_agent=dict(type="bool", default=False),
        look_for_keys=dict(type="bool", default=False),
        connect_timeout=dict(type="float", default=10),
        jump_host=dict(type="str"),
        jump_port=dict(type="int", default=22),
        jump_user=dict(type="str"),
        jump_key_file=dict(type="path"),
        jump_allow_agent=dict(type="bool", default=False),
        jump_host_keys=dict(type="list", elements="str", default=[], no_log=False),
    )


def jump_from_params(params):
    """The shared :class:`JumpHost` the options name (``jump_host``), or None to reach the unit directly."""
    if not params.get("jump_host"):
        return None
    return JumpHost.shared(params["jump_host"], port=params["jump_port"], username=params["jump_user"],
                           key_filename=params["jump_key_file"], allow_agent=params["jump_allow_agent"],
                           host_keys=params["jump_host_keys"], timeout=params["connect_timeout"],
                           interface=params["bind_interface"])


def session_from_params(params, host_key=None, host_key_policy="pin", label=None):
    return DeviceSession(params["address"], port=params["port"], username=params["username"],
                         password=params["password"], key_filename=params["key_file"],
                         allow_agent=params["allow_agent"], look_for_keys=params["look_for_keys"],
                         host_key=host_key, host_key_policy=host_key_policy, timeout=params["connect_timeout"],
                         interface=None if params.get("jump_host") else params["bind_interface"], label=label,
                         jump=jump_from_params(params))
