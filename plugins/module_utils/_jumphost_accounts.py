# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tunnel accounts and ports on the jumphost. Runs on the jumphost, as root.

Two account modes:

* ``per_gateway`` (what today's jumphosts hold): group ``<org>-gateways``, one
  account per gateway whose UID is its tunnel port.
* ``shared``: one tunnel account; each gateway is one line of its
  ``authorized_keys``, named by the key comment, and the ports a line may
  listen on are the allocation.

In both modes the gateway's key may only listen on its own tunnel and
keepalive ports and reach its own keepalive port (autossh ``-M`` loops its
test data through ``-L p:127.0.0.1:p`` and ``-R p:127.0.0.1:p+1``); shells,
commands and ptys get nothing.

Allocation happens under an exclusive lock, so parallel runs never hand one
port out twice. Lines of ``authorized_keys`` that do not parse are kept as
they are and reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import fcntl
import grp
import os
import pwd
import re
import signal
import stat
import tempfile
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._jumphost_sshd import SshdConfinement, sshd_binary
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import (
    KeyFormatError,
    authorized_key_line,
    parse_authorized_keys,
    parse_public_key,
)

STAGE = "register"
PER_GATEWAY = "per_gateway"
SHARED = "shared"
NOLOGIN = "/usr/sbin/nologin"
MAX_USER_NAME = 32
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")
_LISTEN_STATE = "0A"


class PortPlan:
    """Tunnel ports come from ``[low, high]``; the keepalive base port follows from the tunnel port as
    ``keepalive_base + (port - low) * 2`` (the formula of today's jumphost), and autossh uses base + 1 too."""

    def __init__(self, low, high, keepalive_base):
        self.low = low
        self.high = high
        self.keepalive_base = keepalive_base
        if not 1024 <= low <= high <= 65535:
            raise StageError("tunnel_port_min %d and tunnel_port_max %d must satisfy 1024 <= min <= max <= 65535"
                             % (low, high), STAGE)
        if self.keepalive(low) + 1 > 65535:
            raise StageError("keepalive_port_base %d leaves no room for a keepalive port pair" % keepalive_base,
                             STAGE)
        top = self.top
        if self.keepalive(low) <= top and low <= self.keepalive(top) + 1:
            raise StageError("the tunnel ports %d-%d overlap the keepalive ports %d-%d: move keepalive_port_base"
                             % (low, top, self.keepalive(low), self.keepalive(top) + 1), STAGE)

    @property
    def top(self):
        """The highest tunnel port whose keepalive pair still fits below 65536."""
        return min(self.high, self.low + (65534 - self.keepalive_base) // 2)

    def keepalive(self, port):
        return self.keepalive_base + (port - self.low) * 2

    def check(self, port, gateway):
        if self.low <= port <= self.top:
            return
        if port >= self.low and self.keepalive(port) + 1 > 65535:
            raise StageError(
                "%s: tunnel port %d gives keepalive port %d = %d + (%d - %d) * 2, past the highest port 65535 "
                "(the formula stops at tunnel port %d); remove the gateway (state absent) and register it again "
                "to get a free lower port" % (gateway, port, self.keepalive(port), self.keepalive_base, port, self.low,
                                              self.top), STAGE, gateway=gateway)
        raise StageError("%s: its tunnel port %d lies outside %d-%d (tunnel_port_min/tunnel_port_max)"
                         % (gateway, port, self.low, self.top), STAGE, gateway=gateway)

    def allocate(self, assigned, busy):
        """The next free tunnel port after the highest one handed out, then the lowest gap; None when full.

        ``assigned``: ports already given to gateways; ``busy``: ports something listens on right now.
        """
        top = self.top
        handed = [port for port in assigned if self.low <= port <= top]
        start = max(handed) + 1 if handed else self.low
        for candidate in list(range(start, top + 1)) + list(range(self.low, start)):
            keepalive = self.keepalive(candidate)
            if candidate in assigned or candidate in busy or keepalive in assigned or keepalive in busy:
                continue
            return candidate
        return None


class Account:
    def __init__(self, name, uid, gid, home, shell):
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell


class JumphostSystem:
    """What the account logic reads and changes on the jumphost; ``run_command(argv)`` -> (rc, out, err)."""

    def __init__(self, run_command, proc="/proc"):
        self._run_command = run_command
        self.proc = proc
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def run_quietly(self, argv):
        return self._run_command(argv)

    def run(self, argv, what):
        status, out, err = self._run_command(argv)
        if status != 0:
            raise StageError("%s failed (%s exited %d): %s" % (what, argv[0], status, (err or out).strip()), STAGE)
        return out

    @staticmethod
    def group_id(name):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None

    @staticmethod
    def account(name):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell)

    @staticmethod
    def accounts():
        return [Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell)
                for entry in pwd.getpwall()]

    def add_group(self, name):
        self.run(["groupadd", name], "creating group %s" % name)

    def add_account(self, name, group, uid=None, comment=None):
        argv = ["useradd", "--comment", comment or name, "--password", "*", "--gid", group, "--no-user-group",
                "--create-home", "--shell", NOLOGIN]
        argv += ["--uid", str(uid)] if uid is not None else ["--system"]
        self.run(argv + [name], "creating account %s" % name)

    def set_shell(self, name, shell):
        self.run(["usermod", "--shell", shell, name], "setting the shell of %s" % name)

    def delete_account(self, name):
        self.run(["userdel", "--force", "--remove", name], "removing account %s" % name)

    def host_keys(self, sshd_config):
        """The public host keys the jumphost's sshd offers (the ``HostKey`` files ``sshd -T`` names for
        ``sshd_config``), as ``type base64`` lines: what a client must pin to reach it."""
        settings = self.run([sshd_binary(), "-T", "-f", sshd_config], "reading the sshd settings in %s" % sshd_config)
        keys = []
        for line in settings.splitlines():
            name, _sep, value = line.partition(" ")
            if name.lower() != "hostkey":
                continue
            text = self.read_text(value.strip() + ".pub")
            try:
                key = parse_public_key((text or "").strip())
            except KeyFormatError as exc:
                raise StageError("the jumphost's host key %s.pub is missing or not a public key (%s): the gateways "
                                 "and ttn-multitech-cm could not pin it; regenerate it with ssh-keygen -y"
                                 % (value.strip(), exc), STAGE)
            keys.append(key.text(comment=""))
        if not keys:
            raise StageError("sshd -T -f %s names no host key: is that the configuration the jumphost's sshd runs "
                             "with? (role variable jumphost_register_sshd_config)" % sshd_config, STAGE)
        return keys

    def listeners(self):
        """``{port: set(uid)}`` of the TCP sockets listening right now (IPv4 and IPv6)."""
        found = {}
        for table in ("tcp", "tcp6"):
            for fields in self._proc_net(table):
                if fields[3] == _LISTEN_STATE:
                    found.setdefault(int(fields[1].rsplit(":", 1)[1], 16), set()).add(int(fields[7]))
        return found

    def unreserved_ephemeral(self, ports):
        """Of ``ports``, those the kernel may hand out as the local port of an outgoing connection (inside
        ``ip_local_port_range``, outside ``ip_local_reserved_ports``), and the reservations in force;
        ``([], [])`` when /proc does not say."""
        try:
            with open(os.path.join(self.proc, "sys", "net", "ipv4", "ip_local_port_range")) as handle:
                low, high = (int(value) for value in handle.read().split())
            with open(os.path.join(self.proc, "sys", "net", "ipv4", "ip_local_reserved_ports")) as handle:
                reserved = [(int(part.split("-")[0]), int(part.split("-")[-1]))
                            for part in handle.read().strip().split(",") if part]
        except (IOError, OSError, ValueError):
            return [], []
        exposed = sorted(port for port in set(ports) if low <= port <= high
                         and not any(first <= port <= last for first, last in reserved))
        return exposed, reserved

    def _proc_net(self, table):
        try:
            with open(os.path.join(self.proc, "net", table)) as handle:
                next(handle)
                return [line.split() for line in handle]
        except (IOError, OSError, StopIteration):
            return []

    def end_processes(self, uid=None, port=None):
        """SIGTERM the processes of ``uid``, or those holding the listening socket of ``port``; their PIDs."""
        inodes = set()
        if port is not None:
            for table in ("tcp", "tcp6"):
                for fields in self._proc_net(table):
                    if fields[3] == _LISTEN_STATE and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add("socket:[%s]" % fields[9])
            if not inodes:
                return []
        ended = []
        for entry in os.listdir(self.proc):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if uid is not None and os.stat(os.path.join(self.proc, entry)).st_uid != uid:
                    continue
                if inodes and not inodes & set(os.readlink(os.path.join(self.proc, entry, "fd", fd))
                                               for fd in os.listdir(os.path.join(self.proc, entry, "fd"))):
                    continue
                os.kill(int(entry), signal.SIGTERM)
                ended.append(int(entry))
            except (IOError, OSError):
                continue
        return ended

    @staticmethod
    def read_text(path):
        try:
            with open(path) as handle:
                return handle.read()
        except IOError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    @staticmethod
    def ownership(path):
        """``(uid, gid, mode)`` of ``path``, or None when it does not exist."""
        try:
            info = os.lstat(path)
        except OSError:
            return None
        return info.st_uid, info.st_gid, info.st_mode & 0o7777

    @staticmethod
    def set_owner(path, uid, gid, mode):
        os.chown(path, uid, gid)
        os.chmod(path, mode)

    def ensure_dir(self, path, uid, gid, mode):
        if not os.path.isdir(path):
            os.mkdir(path, mode)
        self.set_owner(path, uid, gid, mode)

    @staticmethod
    def write_temp(path, text, uid, gid, mode):
        """A temp file beside ``path`` holding ``text``, owner and mode set, synced: for :meth:`replace`."""
        handle, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=os.path.dirname(path))
        try:
            with os.fdopen(handle, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chown(temp, uid, gid)
            os.chmod(temp, mode)
        except BaseException:
            os.unlink(temp)
            raise
        return temp

    @staticmethod
    def replace(temp, path):
        os.rename(temp, path)

    @staticmethod
    def remove(path):
        if os.path.lexists(path):
            os.unlink(path)

    def write_atomic(self, path, text, uid, gid, mode):
        """Temp file in the same folder, then rename: readers see old or new, whole."""
        temp = self.write_temp(path, text, uid, gid, mode)
        try:
            self.replace(temp, path)
        except BaseException:
            self.remove(temp)
            raise

    def sshd_pid(self, pidfile):
        """The PID in ``pidfile`` when that process is an sshd, else None."""
        try:
            with open(pidfile or "/nonexistent") as handle:
                pid = int(handle.read().split()[0])
            with open(os.path.join(self.proc, str(pid), "comm")) as handle:
                name = handle.read().strip()
        except (IOError, OSError, ValueError, IndexError):
            return None
        return pid if name.startswith("sshd") else None

    def listening_sockets(self, pid):
        """The inodes of the listening TCP sockets process ``pid`` holds."""
        listening = set(fields[9] for table in ("tcp", "tcp6") for fields in self._proc_net(table)
                        if fields[3] == _LISTEN_STATE)
        held = set()
        fds = os.path.join(self.proc, str(pid), "fd")
        try:
            for fd in os.listdir(fds):
                link = os.readlink(os.path.join(fds, fd))
                if link.startswith("socket:[") and link[8:-1] in listening:
                    held.add(link[8:-1])
        except (IOError, OSError):
            pass
        return held

    @staticmethod
    def lock(path, timeout):
        return RegistrationLock(path, timeout)


class RegistrationLock:
    """The jumphost's allocation lock: a regular file in a folder only root may change, opened without following
    links (a gateway account that could create files elsewhere cannot put anything in its place), holding the
    PID of the registration that holds it, for the error of the one that waits."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self.fd = None

    def _folder(self):
        folder = os.path.dirname(self.path) or "."
        try:
            os.mkdir(folder, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise StageError("could not create the lock folder %s: %s" % (folder, exc.strerror), STAGE)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise StageError("the lock folder %s is not a folder only root may change (%s, owner UID %d, mode %04o): "
                             "anyone else could take the registrations' lock; use a lock_file in a folder of root's "
                             "(the default /run/lorawan-conduit/ is made so)"
                             % (folder, "a link" if stat.S_ISLNK(info.st_mode) else "a folder"
                                if stat.S_ISDIR(info.st_mode) else "not a folder", info.st_uid,
                                info.st_mode & 0o7777), STAGE)

    def __enter__(self):
        self._folder()
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                              0o600)
        except OSError as exc:
            raise StageError("could not open the lock file %s (%s): remove whatever stands there"
                             % (self.path, exc.strerror), STAGE)
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            raise StageError("the lock file %s is not a regular file: remove it" % self.path, STAGE)
        deadline = time.time() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.time() > deadline:
                    holder = self._holder()
                    os.close(self.fd)
                    raise StageError("could not take the registrations' lock %s within %d s: %s holds it; let it "
                                     "finish (or end it), then run again" % (self.path, self.timeout, holder), STAGE)
            time.sleep(0.02)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, ("%d\n" % os.getpid()).encode())
        return self

    def _holder(self):
        try:
            pid = int(os.pread(self.fd, 32, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return "another registration"
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (IOError, OSError):
            return "another registration (PID %d, no longer running)" % pid
        return "PID %d (%s)" % (pid, command[:120])

    def __exit__(self, *exc):
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def port_ranges(ports):
    """``[(first, last), ...]`` covering ``ports`` (ints and ranges) with neighbours joined."""
    ranges = []
    for first, last in sorted(ports):
        if ranges and first <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(last, ranges[-1][1]))
        else:
            ranges.append((first, last))
    return ranges


def unreserved_ports_warning(exposed, reserved):
    """Words for ports a gateway listens on at the jumphost that an outgoing connection there may take."""
    def text(ranges):
        return ",".join("%d" % first if first == last else "%d-%d" % (first, last) for first, last in ranges)
    wanted = text(port_ranges(list(reserved) + [(port, port) for port in exposed]))
    return ("jumphost ports %s (keepalive or tunnel) lie in the jumphost's ephemeral port range and are not "
            "reserved: an outgoing connection there can take one, and that gateway's autossh monitor (or its "
            "tunnel) fails until it is free again. Reserve them on the jumphost: "
            "sysctl -w net.ipv4.ip_local_reserved_ports=%s, and the same in /etc/sysctl.d/"
            % (text(port_ranges((port, port) for port in exposed)), wanted))


def tunnel_key_options(port, keepalive):
    """The options that confine a gateway key to its own ports (verified against OpenSSH sshd)."""
    return [("restrict", None), ("port-forwarding", None),
            ("permitlisten", "localhost:%d" % port), ("permitlisten", "localhost:%d" % keepalive),
            ("permitopen", "127.0.0.1:%d" % keepalive), ("command", NOLOGIN)]


def _listen_ports(line):
    ports = []
    for value in line.values("permitlisten"):
        try:
            ports.append(int(value.rsplit(":", 1)[-1]))
        except ValueError:
            continue
    return ports


class Registration:
    """A gateway as the jumphost knows it."""

    def __init__(self, gateway, user, uid, port, keepalive, key=None, path=None):
        self.gateway = gateway
        self.user = user
        self.uid = uid
        self.port = port
        self.keepalive = keepalive
        self.key = key
        self.path = path


class Jumphost:
    """Reads and changes the registrations of one organisation; the base of both modules."""

    def __init__(self, params, system, check_mode=False):
        self.params = params
        self.system = system
        self.check_mode = check_mode
        self.organisation = params["organisation"]
        if not _NAME.match(self.organisation or ""):
            raise StageError("organisation %r: use lower-case letters, digits, '.', '_' and '-'"
                             % self.organisation, STAGE)
        self.mode = params["account_mode"]
        self.group = "%s-gateways" % self.organisation
        self.shared_account = params.get("shared_account") or "%s-tunnel" % self.organisation
        self.plan = PortPlan(params["tunnel_port_min"], params["tunnel_port_max"], params["keepalive_port_base"])

    def under_lock(self, work):
        """``work()`` under the jumphost's allocation lock; in check mode, which changes nothing, without it."""
        if self.check_mode:
            return work()
        with self.system.lock(self.params["lock_file"], self.params["lock_timeout"]):
            return work()

    def confined(self, register):
        """``register()`` with sshd confining the group's accounts: the Match block is put in first, and checked
        with ``sshd -T -C`` for a real account of the group (one that exists, else the first ``register()``
        made). ``(registrations, sshd_result)``; registrations that make no tunnel need no confinement."""
        if self.params["state"] != "present" or not self.params.get("sshd_config"):
            return register(), {}
        confinement = SshdConfinement(self.system, self.params["sshd_config"], self.group, self.check_mode)
        changed, diff = confinement.ensure()
        probe = self._group_member()
        if probe and not (self.check_mode and changed):
            confinement.verify(probe)
        registrations = register()
        if not probe and not self.check_mode:
            probe = self._group_member()
            if probe:
                confinement.verify(probe)
        sshd_result = {"sshd_config_changed": changed}
        if diff:
            sshd_result["diff"] = diff
        return registrations, sshd_result

    def _group_member(self):
        gid = self.system.group_id(self.group)
        return next((account.name for account in sorted(self.system.accounts(), key=lambda entry: entry.uid)
                     if gid is not None and account.gid == gid), None)

    @staticmethod
    def listen_ports(registration):
        """The ports a registered gateway listens on at the jumphost: its tunnel port, keepalive and keepalive+1."""
        if registration.get("port") is None:
            return []
        keepalive = registration.get("keepalive_port")
        return [registration["port"]] + ([keepalive, keepalive + 1] if keepalive else [])

    def unreserved_listen_ports(self, registrations):
        """``(unreserved_ports, reserved_ports)`` for the gateways registered (not refused, not removed): see
        :meth:`JumphostSystem.unreserved_ephemeral`."""
        ports = [port for registration in registrations if not registration.get("failed")
                 for port in self.listen_ports(registration)] if self.params["state"] == "present" else []
        return self.system.unreserved_ephemeral(ports)

    def jumphost_host_keys(self):
        """``{"jumphost_host_keys": [...]}`` for registrations that make tunnels (pinned by the hand-over), else
        nothing."""
        if self.params["state"] != "present" or not self.params.get("sshd_config"):
            return {}
        return {"jumphost_host_keys": self.system.host_keys(self.params["sshd_config"])}

    @staticmethod
    def keys_path(account):
        return os.path.join(account.home, ".ssh", "authorized_keys")

    def registrations(self):
        if self.mode == SHARED:
            account = self.system.account(self.shared_account)
            if account is None:
                return []
            return [self._shared_registration(account, line)
                    for line in parse_authorized_keys(self.system.read_text(self.keys_path(account)) or "")
                    if line.is_key and line.key.comment and _listen_ports(line)]
        gid = self.system.group_id(self.group)
        found = []
        for account in sorted(self.system.accounts(), key=lambda entry: entry.uid):
            # the shared tunnel account sits in the same group; a system UID is no port
            if gid is None or account.gid != gid or account.name == self.shared_account or account.uid < 1024:
                continue
            lines = parse_authorized_keys(self.system.read_text(self.keys_path(account)) or "")
            keys = [line.key for line in lines if line.is_key]
            found.append(Registration(account.name, account.name, account.uid, account.uid,
                                      self.plan.keepalive(account.uid), keys[0] if keys else None,
                                      self.keys_path(account)))
        return found

    def claimed_ports(self, mine):
        """``{port: where}`` for every port a key line on the jumphost may listen on (``permitlisten``), except
        the lines ``mine(account, line)`` says are this gateway's own: ports no one else may be handed."""
        claimed = {}
        for account in self.system.accounts():
            path = self.keys_path(account)
            try:
                text = self.system.read_text(path)
            except (IOError, OSError):
                continue
            for line in parse_authorized_keys(text or ""):
                if line.is_key and not mine(account, line):
                    for port in _listen_ports(line):
                        claimed.setdefault(port, "permitlisten on line %d of %s (account %s)"
                                           % (line.number, path, account.name))
        return claimed

    def _shared_registration(self, account, line):
        ports = _listen_ports(line)
        keepalive = ports[1] if len(ports) > 1 else self.plan.keepalive(ports[0])
        return Registration(line.key.comment, account.name, account.uid, ports[0], keepalive, line.key,
                            self.keys_path(account))


class Registrar(Jumphost):
    """``jumphost_register``: one gateway present or absent."""

    def __init__(self, params, system, check_mode=False, reserved=None):
        super(Registrar, self).__init__(params, system, check_mode)
        # ports planned for other gateways of the same batch (in check mode nothing shows them on the system)
        self.reserved = reserved if reserved is not None else set()
        self.gateway = params["gateway"]
        self.state = params["state"]
        self.actions = []
        self.malformed = []
        self.diff = None
        self.result = {"gateway": self.gateway, "mode": self.mode, "user": None, "port": None,
                       "keepalive_port": None, "key_fingerprint": None, "authorized_keys": None,
                       "rekeyed": False, "previous_key_fingerprint": None}
        if not _NAME.match(self.gateway or ""):
            self.fail("the gateway name may hold lower-case letters, digits, '.', '_' and '-' only")
        if self.mode == PER_GATEWAY and len(self.gateway) > MAX_USER_NAME:
            self.fail("the name is %d characters long and per_gateway accounts are Linux user names of at most "
                      "%d: use account_mode shared or a shorter organisation prefix"
                      % (len(self.gateway), MAX_USER_NAME))
        self.key = None
        if self.state == "present":
            try:
                self.key = parse_public_key(params["host_key"])
            except KeyFormatError as exc:
                self.fail("host_key is not an OpenSSH public key (%s); pass the gateway's "
                          "/etc/ssh/ssh_host_rsa_key.pub" % exc)

    def fail(self, message, **context):
        raise StageError("%s: %s" % (self.gateway, message), STAGE, gateway=self.gateway, **context)

    def run(self):
        result, sshd_result = self.under_lock(lambda: self.confined(self.register))
        result["unreserved_ports"], result["reserved_ports"] = self.unreserved_listen_ports([result])
        result.update(self.jumphost_host_keys())
        return _with_sshd_result(result, sshd_result)

    def register(self):
        """The registration, for a caller that holds the lock (or runs in check mode)."""
        self._apply()
        self.result.update(changed=bool(self.actions), actions=self.actions, malformed_lines=self.malformed)
        if self.diff is not None:
            self.result["diff"] = self.diff
        return self.result

    def _apply(self):
        gid = self._group()
        if self.mode == SHARED:
            self._shared(gid)
        else:
            self._per_gateway(gid)

    def _range_full(self):
        self.fail("no free tunnel port left in %d-%d: remove gateways that are gone (state absent) or widen "
                  "tunnel_port_min/tunnel_port_max (keepalive ports stop the range where keepalive_port_base + "
                  "(port - tunnel_port_min) * 2 + 1 would pass 65535)" % (self.plan.low, self.plan.top))

    def _act(self, text):
        self.actions.append(text)
        return not self.check_mode

    def _group(self):
        gid = self.system.group_id(self.group)
        if gid is None and self.state == "present" and self._act("create group %s" % self.group):
            self.system.add_group(self.group)
            gid = self.system.group_id(self.group)
        return gid

    # --- per_gateway ----------------------------------------------------------------------------

    def _per_gateway(self, gid):
        account = self.system.account(self.gateway)
        if account is not None and account.gid != gid:
            self.fail("account %s exists on the jumphost but is not a gateway account of group %s: pick "
                      "another gateway name, or remove that account if it is left over" % (account.name, self.group))
        if self.state == "absent":
            if account is not None:
                self.result.update(user=account.name, port=account.uid)
                if self._act("remove account %s and free port %d" % (account.name, account.uid)):
                    self.system.end_processes(uid=account.uid)
                    self.system.delete_account(account.name)
            return
        claimed = self.claimed_ports(lambda owner, line: owner.name == self.gateway)
        if account is None:
            uids = set(entry.uid for entry in self.system.accounts() if self.plan.low <= entry.uid <= self.plan.top)
            port = self.plan.allocate(uids | self.reserved | set(claimed), self.system.listeners())
            if port is None:
                self._range_full()
            if self._act("create account %s with UID %d (its tunnel port)" % (self.gateway, port)):
                self.system.add_account(self.gateway, self.group, uid=port)
                account = self.system.account(self.gateway)
            else:
                account = Account(self.gateway, port, gid, os.path.join("/home", self.gateway), NOLOGIN)
        self.plan.check(account.uid, self.gateway)
        twins = sorted(entry.name for entry in self.system.accounts()
                       if entry.uid == account.uid and entry.name != account.name)
        if twins:
            self.fail("account %s shares UID %d with %s: the UID is the tunnel port, so two gateways would claim "
                      "one port; give the other account another UID (usermod -u) or remove it if it is left over"
                      % (account.name, account.uid, ", ".join(twins)))
        self._refuse_claimed(claimed, account.uid, self.plan.keepalive(account.uid))
        if account.shell != NOLOGIN and self._act("set the shell of %s to %s" % (account.name, NOLOGIN)):
            self.system.set_shell(account.name, NOLOGIN)
        port, keepalive = account.uid, self.plan.keepalive(account.uid)
        self.result.update(user=account.name, port=port, keepalive_port=keepalive)

        self._install(account, account.gid if gid is None else gid, port, keepalive, lambda line: line.is_key)

    def _refuse_claimed(self, claimed, port, keepalive):
        for wanted in (port, keepalive):
            if wanted in claimed:
                self.fail("its port %d is also %s: two tunnels cannot listen on one port. Remove that line if it is "
                          "left over, or remove this gateway (state absent) and register it again for a free port"
                          % (wanted, claimed[wanted]))

    # --- shared ---------------------------------------------------------------------------------

    def _owned_line(self, line):
        return line.is_key and line.key.comment == self.gateway and bool(_listen_ports(line))

    def _shared(self, gid):
        account = self.system.account(self.shared_account)
        if account is None:
            if self.state == "absent":
                return
            if self._act("create the shared tunnel account %s" % self.shared_account):
                self.system.add_account(self.shared_account, self.group)
                account = self.system.account(self.shared_account)
            else:
                account = Account(self.shared_account, -1, gid, os.path.join("/home", self.shared_account), NOLOGIN)
        self.result["user"] = account.name
        path = self.keys_path(account)
        lines = parse_authorized_keys(self.system.read_text(path) or "")
        mine = [line for line in lines if self._owned_line(line)]
        if self.state == "absent":
            if mine:
                port = _listen_ports(mine[0])[0]
                self.result["port"] = port
                self._install(account, account.gid, port, None, self._owned_line)
                if not self.check_mode:
                    self.system.end_processes(port=port)
            return
        for line in lines:
            if line.is_key and line not in mine and line.key.same_as(self.key):
                owner = line.key.comment if _listen_ports(line) else None
                self.fail("this host key already stands on line %d of %s%s: two gateways with one host key cannot "
                          "be told apart; regenerate the host keys of one of them, or remove that line"
                          % (line.number, path, " for gateway %s" % owner if owner else " without restrictions"))
        claimed = self.claimed_ports(lambda owner, line: owner.name == account.name and self._owned_line(line))
        if mine:
            registered = self._shared_registration(account, mine[0])
            port, keepalive = registered.port, registered.keepalive
            self._refuse_claimed(claimed, port, keepalive)
        else:
            uids = set(entry.uid for entry in self.system.accounts() if self.plan.low <= entry.uid <= self.plan.top)
            port = self.plan.allocate(uids | self.reserved | set(claimed), self.system.listeners())
            if port is None:
                self._range_full()
            keepalive = self.plan.keepalive(port)
        self.result.update(port=port, keepalive_port=keepalive)

        self._install(account, account.gid, port, keepalive, self._owned_line)

    # --- the key file ---------------------------------------------------------------------------

    def _install(self, account, gid, port, keepalive, owned):
        """Put this gateway's line where the lines ``owned`` by it stood (or last), or drop them for state
        absent; every other line, malformed ones included, stays as it is."""
        ssh_dir = os.path.join(account.home, ".ssh")
        path = os.path.join(ssh_dir, "authorized_keys")
        self.result["authorized_keys"] = path
        before = self.system.read_text(path)
        lines = parse_authorized_keys(before or "")
        for line in lines:
            if line.problem:
                self.malformed.append({"path": path, "line": line.number, "reason": line.problem})
        wanted = None
        if self.key is not None:
            wanted = authorized_key_line(self.key, tunnel_key_options(port, keepalive), self.gateway)
            self.result["key_fingerprint"] = self.key.fingerprint
        kept, placed, previous = [], False, []
        for line in lines:
            if not owned(line):
                kept.append(line.text)
                continue
            if wanted is None:
                continue
            if not line.key.same_as(self.key):
                previous.append(line.key)
            if not placed:
                kept.append(wanted)
                placed = True
        if wanted is not None and not placed:
            kept.append(wanted)
        after = "".join(text + "\n" for text in kept)
        if previous:
            self.result.update(rekeyed=True, previous_key_fingerprint=previous[0].fingerprint)
        if before != after and (before or after):
            if previous:
                what = "replace key %s with %s (re-flashed unit?), port %d kept" % (
                    ", ".join(key.fingerprint for key in previous), self.key.fingerprint, port)
            elif self.key is not None and before and any(line.is_key and line.key.same_as(self.key)
                                                         for line in lines):
                what = "restrict the key of %s to ports %d and %d" % (self.gateway, port, keepalive)
            elif self.key is not None:
                what = "authorize the host key %s for ports %d and %d" % (self.key.fingerprint, port, keepalive)
            else:
                what = "remove the key of %s and free port %d" % (self.gateway, port)
            self.diff = {"before_header": path, "after_header": path, "before": before or "", "after": after}
            if self._act(what):
                self._home(account, gid)
                self.system.ensure_dir(ssh_dir, account.uid, gid, 0o700)
                self.system.write_atomic(path, after, account.uid, gid, 0o600)
            return
        if self.key is not None:
            self._home(account, gid)
        for target, mode in ((ssh_dir, 0o700), (path, 0o600)):
            seen = self.system.ownership(target)
            if seen is not None and seen != (account.uid, gid, mode) and \
                    self._act("set %s to owner %s, mode %o" % (target, account.name, mode)):
                self.system.set_owner(target, account.uid, gid, mode)

    def _home(self, account, gid):
        """The account's home as sshd needs it to read the key file (its own, not writable by others). useradd
        makes it root's with mode 000 first and hands it over last: a registration cut off in between (the jumphost
        restarted, say) leaves an account whose key sshd cannot open."""
        seen = self.system.ownership(account.home)
        if seen is None:
            if self._act("create %s (the account's home is missing)" % account.home):
                self.system.ensure_dir(account.home, account.uid, gid, 0o700)
            return
        uid, owner_gid, mode = seen
        fixed = (mode | 0o700) & ~0o022
        if (uid, owner_gid) != (account.uid, gid) or fixed != mode:
            if self._act("set %s to owner %s, mode %o (was %s:%s, mode %o: an account creation cut off?)"
                         % (account.home, account.name, fixed, uid, owner_gid, mode)):
                self.system.set_owner(account.home, account.uid, gid, fixed)


class BatchRegistrar(Jumphost):
    """``jumphost_register`` with ``gateways``: every gateway of a batch under one lock, in one session.

    What concerns the whole jumphost (organisation, port range, the lock) fails the batch; what concerns one
    gateway (its name, its key, no port left for it) fails that gateway's entry only, the others go on."""

    def __init__(self, params, system, check_mode=False):
        super(BatchRegistrar, self).__init__(params, system, check_mode)
        self.entries = params["gateways"]
        names = [entry["gateway"] for entry in self.entries]
        twice = sorted(set(name for name in names if names.count(name) > 1))
        if twice:
            raise StageError("gateways lists %s more than once: one entry a gateway" % ", ".join(twice), STAGE,
                             gateways=twice)

    def run(self):
        registrations, sshd_result = self.under_lock(lambda: self.confined(self._register_all))
        failed = sorted(name for name, entry in registrations.items() if entry.get("failed"))
        malformed, seen = [], set()
        for entry in registrations.values():
            for line in entry.get("malformed_lines", []):
                if (line["path"], line["line"]) not in seen:
                    seen.add((line["path"], line["line"]))
                    malformed.append(line)
        exposed, reserved = self.unreserved_listen_ports(registrations.values())
        return _with_sshd_result({
            "changed": any(entry.get("changed") for entry in registrations.values()),
            "registrations": registrations, "failed_gateways": failed, "malformed_lines": malformed,
            "mode": self.mode, "unreserved_ports": exposed, "reserved_ports": reserved,
            **self.jumphost_host_keys()}, sshd_result)

    def _register_all(self):
        registrations, reserved = {}, set()
        for entry in self.entries:
            params = dict(self.params, gateway=entry["gateway"], host_key=entry.get("host_key"))
            try:
                if params["state"] == "present" and not params["host_key"]:
                    raise StageError("%s: no host key given for it (gateways[].host_key)" % entry["gateway"],
                                     STAGE, gateway=entry["gateway"])
                result = Registrar(params, self.system, self.check_mode, reserved=reserved).register()
            except StageError as exc:
                result = dict(exc.context, gateway=entry["gateway"], changed=False, failed=True, msg=exc.message)
            else:
                if result["port"] is not None:
                    reserved.add(result["port"])
            registrations[entry["gateway"]] = result
        return registrations


def _with_sshd_result(result, sshd_result):
    """The registration result with what was done to the sshd configuration (its change, its diff)."""
    result.setdefault("actions", [])
    if sshd_result.get("sshd_config_changed"):
        result["changed"] = True
        result["actions"].insert(0, "confine the gateway accounts in the sshd configuration")
    if "diff" in sshd_result:
        result["sshd_config_diff"] = sshd_result["diff"]
    result["sshd_config_changed"] = sshd_result.get("sshd_config_changed", False)
    return result


_TUNNEL_CHECKS = ("On the gateway check '/etc/init.d/ssh_tunnel status' and /etc/default/ssh_tunnel (REMOTE_HOST "
                  "must be reachable from the unit), and that its RSA host key is the one registered")


class TunnelLister(Jumphost):
    """``jumphost_tunnels``: every registered gateway and whether its tunnel listens right now."""

    def run(self):
        """The listing; with ``wait_timeout``, once every gateway asked for listens, or a failure naming those
        that do not."""
        wanted = set(self.params.get("gateways") or [])
        timeout = self.params.get("wait_timeout") or 0
        if timeout and not wanted:
            raise StageError("wait_timeout needs the gateways to wait for (option gateways)", STAGE)
        if self.check_mode:
            timeout = 0  # check mode started no tunnel: there is nothing to wait for
        deadline = time.time() + timeout
        while True:
            result = self._listing(wanted)
            silent = sorted(tunnel["gateway"] for tunnel in result["tunnels"] if not tunnel["listening"])
            silent += result["missing"]
            if not timeout or not silent:
                return result
            if time.time() > deadline:
                ports = dict((tunnel["gateway"], tunnel["port"]) for tunnel in result["tunnels"])
                reasons = dict((gateway, "%s: no tunnel listens on port %d of the jumphost after %d s. %s"
                                % (gateway, ports[gateway], timeout, _TUNNEL_CHECKS) if gateway in ports
                                else "%s: not registered on the jumphost, so no tunnel of it can listen there; "
                                     "register it first" % gateway) for gateway in silent)
                raise StageError("%s: no tunnel listening on the jumphost after %d s. %s"
                                 % (", ".join(silent), timeout, _TUNNEL_CHECKS),
                                 "tunnel", not_listening=silent, reasons=reasons, tunnels=result["tunnels"])
            time.sleep(0.25)

    def _listing(self, wanted):
        listeners = self.system.listeners()
        tunnels = []
        for found in self.registrations():
            if wanted and found.gateway not in wanted:
                continue
            owners = listeners.get(found.port, set())
            tunnels.append({
                "gateway": found.gateway, "user": found.user, "port": found.port,
                "keepalive_port": found.keepalive,
                "key_fingerprint": found.key.fingerprint if found.key else None,
                "listening": found.uid in owners,
                "keepalive_listening": found.uid in listeners.get(found.keepalive, set()),
                "port_held_by_other_uid": sorted(owners - set([found.uid])),
            })
        return {"changed": False, "mode": self.mode, "tunnels": tunnels,
                "missing": sorted(wanted - set(tunnel["gateway"] for tunnel in tunnels))}


def jumphost_argument_spec():
    """The options both jumphost modules share (documented in the lorawan.conduit.jumphost fragment)."""
    return dict(
        organisation=dict(type="str", required=True, aliases=["org"]),
        account_mode=dict(type="str", choices=[PER_GATEWAY, SHARED], default=PER_GATEWAY),
        shared_account=dict(type="str"),
        tunnel_port_min=dict(type="int", default=20000),
        tunnel_port_max=dict(type="int", default=32767),
        keepalive_port_base=dict(type="int", default=40000),
    )
