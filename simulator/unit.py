"""A simulated unit built from real parts: its root filesystem and its running system.

A unit that has SSH runs the distribution's OpenSSH ``sshd`` on its own loopback address,
inside mount, PID and UTS namespaces of its own, chrooted into a root filesystem of its own:
``/etc`` (passwd, shadow, sudoers, host keys, ``mlinux-version``), ``/home``, ``/var/config``,
a ``/var/volatile`` tmpfs of the unit's size that ``/tmp`` points into, and the device's
``/sys/devices/platform/mts-io``. ``/usr`` is the machine's own under a per-unit overlay, so
sudo, bash, Python, ssh, autossh and sftp-server are the real programs; ``/bin`` and
``/sbin`` hold busybox's applets, first on every session's PATH as on the device.

PID 1 is a small init (:data:`unit_files.INIT`): it starts sshd and the runlevel 5 scripts,
and busybox's ``reboot`` signals it as it signals busybox init. It reports each boot and each
shutdown on a pipe; :class:`UnitSystem` turns those into events for the simulator, which
decides what the unit is when it comes back (a flash, a reboot time). Stopping the simulator,
also by SIGKILL, ends every process a unit started: the namespace's init goes with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from . import unit_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CM_ENV = "TTN_MULTITECH_CM"
CM_DEFAULT = os.path.join(os.path.dirname(REPO), "shared", "third_party", "ttn-multitech-cm")
CM_FIRMWARE_UPGRADE = "roles/conduit/files/mlinux-firmware-upgrade"
SSHD = "/usr/sbin/sshd"
AUTOSSH_PROGRAM = "/usr/lib/autossh/autossh"
REQUIRED_PROGRAMS = ("/usr/bin/busybox", SSHD, "/usr/lib/openssh/sftp-server", "/usr/bin/sudo", "/usr/bin/bash",
                     "/usr/bin/python3", "/usr/bin/ssh", AUTOSSH_PROGRAM, "/usr/bin/setpriv", "/usr/bin/unshare",
                     "/usr/bin/openssl")
SYSFS = "sys/devices/platform/mts-io"
ONE_SHOT_KNOBS = ("drop_upload_after",)


def ttn_multitech_cm_checkout() -> str | None:
    """The ttn-multitech-cm checkout: ``$TTN_MULTITECH_CM``, else the project's snapshot beside this repository."""
    path = os.environ.get(CM_ENV) or CM_DEFAULT
    return path if os.path.isfile(os.path.join(path, CM_FIRMWARE_UPGRADE)) else None


def require_parts() -> str:
    """The ttn-multitech-cm checkout whose device scripts units run; a clear error when a part is missing."""
    missing = [path for path in REQUIRED_PROGRAMS if not os.path.exists(path)]
    if missing:
        raise RuntimeError(f"simulated units need {', '.join(missing)}: run `make setup` (it installs openssh-server, "
                           "sudo, busybox, autossh, python3)")
    if os.geteuid() != 0:
        raise RuntimeError("simulated units with SSH need root (each runs sshd in namespaces of its own)")
    checkout = ttn_multitech_cm_checkout()
    if checkout is None:
        raise RuntimeError(f"simulated units run ttn-multitech-cm's own device scripts: set {CM_ENV} to a checkout of "
                           f"IthacaThings/ttn-multitech-cm (none at {CM_DEFAULT})")
    return checkout


@dataclass
class Account:
    name: str
    uid: int
    gid: int
    group: str
    home: str
    password: str | None  # None: no password login
    sudo: bool = False
    shell: str = "/bin/sh"


@dataclass
class UnitSpec:
    """What a unit's root filesystem says about it."""

    firmware: str  # aep / mlinux
    hostname: str
    address: str
    ssh_port: int
    sysfs: dict[str, str]
    accounts: list[Account]
    host_keys: list[tuple[bytes, str]]  # (OpenSSH private key, public line), one per key type; RSA first
    version: str  # mLinux version, or mPower version on AEP
    volatile_mib: int = 128
    ntp_reachable: bool = True
    shutdown_grace: float = 0.5
    forwarder: bool = False  # the packet forwarder make apply installs, started at boot
    forwarder_crashes: bool = False
    clock_offset: float = 0.0


def password_hash(password: str) -> str:
    """SHA-512 crypt, as /etc/shadow holds it (openssl: Python 3.13 has no crypt module)."""
    done = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def _write_file(path: str, data: str | bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
    """Atomically, with its owner and mode."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".sim-new"
    with open(tmp, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def links_into_var_config(root: str) -> list[tuple[str, str]]:
    """(device path, target) of the symlinks under a root's /etc and /home that point into /var/config: mLinux
    keeps them across a flash."""
    found = []
    for top in ("etc", "home"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path) and os.readlink(path).startswith("/var/config"):
                    found.append(("/" + os.path.relpath(path, root), os.readlink(path)))
    return found


class UnitRoot:
    """The files of one unit: ``root/`` (its /), ``usr-upper/`` (its changes to /usr), logs."""

    def __init__(self, path: str):
        self.path = path
        self.root = os.path.join(path, "root")
        self.usr_upper = os.path.join(path, "usr-upper")
        self.usr_work = os.path.join(path, "usr-work")

    def host(self, device_path: str) -> str:
        """Where a device path's file lies on this machine (not for paths under /var/volatile or /proc)."""
        return os.path.join(self.root, device_path.lstrip("/"))

    def resolve(self, device_path: str) -> str:
        """``host(device_path)`` with the symlinks on the way followed as the unit follows them (inside its root)."""
        parts = [part for part in device_path.split("/") if part]
        resolved: list[str] = []
        for _hop in range(40):
            if not parts:
                return self.host("/" + "/".join(resolved))
            part = parts.pop(0)
            if part == "..":
                resolved = resolved[:-1]
                continue
            path = self.host("/" + "/".join(resolved + [part]))
            if os.path.islink(path):
                target = os.readlink(path)
                if target.startswith("/"):
                    resolved = []
                parts = [each for each in target.split("/") if each and each != "."] + parts
            elif part != ".":
                resolved.append(part)
        raise OSError(40, "Too many levels of symbolic links", device_path)

    # --- writing --------------------------------------------------------------------

    def write(self, device_path: str, data: str | bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        _write_file(self.host(device_path), data, mode, uid, gid)

    def mkdir(self, device_path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        path = self.host(device_path)
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, mode)

    def symlink(self, target: str, device_path: str) -> None:
        path = self.host(device_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)

    def set_knob(self, name: str, value: bool | int | float | None) -> None:
        """A knob the unit's own scripts read (/etc/sim/NAME: 1/0, or a number as the shell compares it); None
        removes it. Sessions read them as their user; one that fires once (drop_upload_after) empties its file."""
        if value is None:
            if os.path.lexists(self.host(f"/etc/sim/{name}")):
                os.unlink(self.host(f"/etc/sim/{name}"))
            return
        self.write(f"/etc/sim/{name}", f"{value:g}\n" if isinstance(value, float) else f"{int(value)}\n",
                   0o666 if name in ONE_SHOT_KNOBS else 0o644)

    # --- building ----------------------------------------------------------------------

    def build(self, spec: UnitSpec, checkout: str, keep_config: bool = False) -> None:
        """A fresh root for ``spec``; with ``keep_config`` /var/config and the links into it survive (a flash)."""
        kept_links: list[tuple[str, str]] = []
        config = os.path.join(self.root, "var", "config")
        saved_config = os.path.join(self.path, "config.kept")
        if keep_config and os.path.isdir(config):
            kept_links = links_into_var_config(self.root)
            shutil.rmtree(saved_config, ignore_errors=True)
            os.rename(config, saved_config)
        for path in (self.root, self.usr_upper, self.usr_work):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.root, self.usr_upper, self.usr_work):
            os.makedirs(path)
        os.chmod(self.path, 0o755)
        os.chmod(self.root, 0o755)
        self._tree()
        self._busybox()
        self._etc(spec)
        self.write_accounts(spec.accounts)
        self._sysfs(spec.sysfs)
        self._device_commands(spec, checkout)
        if os.path.isdir(saved_config):
            shutil.rmtree(config)
            os.rename(saved_config, config)
        for link, target in kept_links:
            os.makedirs(os.path.dirname(self.host(link)), exist_ok=True)
            if not os.path.lexists(self.host(link)):
                self.symlink(target, link)

    def _tree(self) -> None:
        for path, mode in (("/bin", 0o755), ("/sbin", 0o755), ("/usr", 0o755), ("/etc", 0o755),
                           ("/etc/init.d", 0o755), ("/etc/default", 0o755), ("/etc/ssh", 0o755),
                           ("/etc/sudoers.d", 0o750), ("/etc/pam.d", 0o755), ("/etc/sim", 0o755), ("/home", 0o755),
                           ("/var", 0o755), ("/var/config", 0o755), ("/var/volatile", 0o755), ("/var/lib/opkg", 0o755),
                           ("/media", 0o755), ("/media/card", 0o755), ("/mnt", 0o755), ("/proc", 0o555),
                           ("/dev", 0o755), ("/sys", 0o555), ("/run", 0o755), ("/root", 0o700)):
            self.mkdir(path, mode)
        for level in "0123456S":
            self.mkdir(f"/etc/rc{level}.d")
        for target, link in (("usr/lib", "/lib"), ("usr/lib64", "/lib64"), ("var/volatile/tmp", "/tmp"),
                             ("volatile/log", "/var/log"), ("../run", "/var/run"), ("volatile/tmp", "/var/tmp")):
            self.symlink(target, link)

    def _busybox(self) -> None:
        listing = subprocess.run(["/usr/bin/busybox", "--list-full"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for entry in listing:
            directory, _slash, name = entry.rpartition("/")
            target = "/sbin" if directory.endswith("sbin") else "/bin"
            path = self.host(f"{target}/{name}")
            if not os.path.lexists(path):
                os.symlink("/usr/bin/busybox", path)
        self.symlink("/usr/bin/bash", "/bin/bash")

    def configure(self, spec: UnitSpec) -> None:
        """What may have changed since the root was built (before each boot): accounts (commissioning makes them on
        AEP units), host keys, sshd's address and port."""
        self.write_accounts(spec.accounts)
        self._ssh(spec)

    def _ssh(self, spec: UnitSpec) -> None:
        host_keys = []
        for private, public in spec.host_keys:
            kind = public.split()[0].replace("ssh-", "").replace("ecdsa-sha2-nistp256", "ecdsa")
            name = f"/etc/ssh/ssh_host_{kind}_key"
            self.write(name, private, 0o600)
            self.write(name + ".pub", public.strip() + "\n", 0o644)
            host_keys.append(f"HostKey {name}")
        self.write("/etc/ssh/sshd_config", unit_files.SSHD_CONFIG.format(
            port=spec.ssh_port, address=spec.address, host_keys="\n".join(host_keys), path=unit_files.DEVICE_PATH,
            kex=unit_files.OPENSSH_8_4_KEX))
        self.write("/etc/ssh/ssh_config", unit_files.SSH_CONFIG.format(kex=unit_files.OPENSSH_8_4_KEX))
        # The unit's own address is its localhost: a tunnel's `-R PORT:localhost:22` reaches this unit's sshd.
        self.write("/etc/hosts", f"{spec.address}\tlocalhost {spec.hostname}\n")

    def _etc(self, spec: UnitSpec) -> None:
        self._ssh(spec)
        self.write("/etc/hostname", spec.hostname + "\n")
        self.write("/etc/nsswitch.conf", unit_files.NSSWITCH)
        self.write("/etc/profile", f"export PATH={unit_files.DEVICE_PATH}\nexport PS1='\\u@\\h:\\w\\$ '\n")
        self.write("/etc/pam.d/sudo", unit_files.PAM_SUDO)
        self.write("/etc/pam.d/other", unit_files.PAM_SUDO)
        for name in ("ld.so.cache", "services", "protocols"):
            if os.path.exists(f"/etc/{name}"):
                shutil.copyfile(f"/etc/{name}", self.host(f"/etc/{name}"))
        if spec.firmware == "mlinux":
            self.write("/etc/mlinux-version", f"mLinux {spec.version}\nBuilt from branch: ttni-5.3\n"
                                              f"Revision: {hashlib.sha1(spec.version.encode()).hexdigest()}\n")
            self.write("/etc/init.d/functions", unit_files.FUNCTIONS)
            self.write("/etc/init.d/umountfs", unit_files.MLINUX_UMOUNTFS, 0o755)
            self.write("/var/lib/opkg/installed", unit_files.OPKG_INSTALLED)
        else:
            self.write("/etc/mpower-version", spec.version + "\n")
            self.write("/etc/init.d/functions", unit_files.AEP_FUNCTIONS)
            self.write("/etc/init.d/umountfs", unit_files.AEP_UMOUNTFS, 0o755)
        for level in "06":
            self.symlink("../init.d/umountfs", f"/etc/rc{level}.d/S40umountfs")
        if spec.firmware == "mlinux" and spec.forwarder:
            self.write("/etc/init.d/ttn-pkt-forwarder", unit_files.FORWARDER_INIT, 0o755)
            self.write("/opt/lora/mp_pkt_fwd", unit_files.FORWARDER_PROGRAM, 0o755)
            self.symlink("../init.d/ttn-pkt-forwarder", "/etc/rc5.d/S95ttn-pkt-forwarder")
        self.set_knob("ntp_reachable", int(spec.ntp_reachable))
        self.set_knob("shutdown_grace", spec.shutdown_grace)
        self.set_knob("forwarder_crashes", int(spec.forwarder_crashes))
        self.set_knob("clock_offset", float(spec.clock_offset))

    def write_accounts(self, accounts: list[Account]) -> None:
        """passwd, group, shadow and sudoers for these accounts (and sshd's own), and their homes."""
        passwd = ["sshd:x:74:74:sshd privsep:/run/sshd:/bin/false"]
        groups: dict[str, tuple[int, list[str]]] = {"sshd": (74, []), "sudo": (27, []), "nogroup": (65534, [])}
        shadow = []
        for account in accounts:
            passwd.append(f"{account.name}:x:{account.uid}:{account.gid}::{account.home}:{account.shell}")
            gid, members = groups.get(account.group, (account.gid, []))
            groups[account.group] = (gid, members)
            if account.sudo:
                groups["sudo"][1].append(account.name)
            hashed = password_hash(account.password) if account.password else "*"
            shadow.append(f"{account.name}:{hashed}:19000:0:99999:7:::")
            if not os.path.isdir(self.host(account.home)):
                self.mkdir(account.home, 0o700 if account.name == "root" else 0o755, account.uid, account.gid)
        self.write("/etc/passwd", "\n".join(passwd) + "\n")
        self.write("/etc/group", "".join(f"{name}:x:{gid}:{','.join(members)}\n"
                                         for name, (gid, members) in groups.items()))
        self.write("/etc/shadow", "\n".join(shadow) + "\n", 0o600)
        self.write("/etc/sudoers", "Defaults env_reset\nDefaults secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                   "/usr/bin:/sbin:/bin\"\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n"
                                   "#includedir /etc/sudoers.d\n", 0o440)

    def _sysfs(self, values: dict[str, str]) -> None:
        base = os.path.join(self.root, SYSFS)
        shutil.rmtree(base, ignore_errors=True)
        for name, value in values.items():
            path = os.path.join(base, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as handle:
                handle.write(value + "\n")
            os.chmod(path, 0o444)

    def _device_commands(self, spec: UnitSpec, checkout: str) -> None:
        for relative, text in (("sbin/mts-io-sysfs", unit_files.MTS_IO_SYSFS),
                               ("sbin/update-rc.d", unit_files.UPDATE_RC_D),
                               ("sbin/ntpdate", unit_files.NTPDATE),
                               ("bin/opkg", unit_files.OPKG),
                               ("libexec/sim-sftp-server", unit_files.SFTP_SERVER)):
            _write_file(os.path.join(self.usr_upper, relative), text, 0o755)
        # mLinux's /usr/bin/autossh is the program itself; Debian's is a wrapper script, which init scripts'
        # `start-stop-daemon --exec /usr/bin/autossh` would never find running
        shutil.copy2(AUTOSSH_PROGRAM, os.path.join(self.usr_upper, "bin", "autossh"))
        if spec.firmware == "mlinux":  # mLinux has /usr/bin/python (Python 2 up to mLinux 5; 3 here)
            os.symlink("python3", os.path.join(self.usr_upper, "bin", "python"))
        with open(os.path.join(checkout, CM_FIRMWARE_UPGRADE), "rb") as handle:
            _write_file(os.path.join(self.usr_upper, "sbin/mlinux-firmware-upgrade"), handle.read(), 0o755)
        # busybox's date behind the unit's clock (clock_offset), wherever a PATH (sudo's secure_path) finds date
        _write_file(os.path.join(self.usr_upper, "bin", "date"), unit_files.DATE, 0o755)
        self.symlink("/usr/bin/date", "/bin/date")
        self.write("/sbin/init", unit_files.INIT, 0o755)
        self.write("/sbin/reboot", unit_files.REBOOT, 0o755)


# Runs as PID 1 of the unit's new namespaces, before the chroot: the unit's mounts.
NAMESPACE_SCRIPT = """\
set -e
R="$UNIT/root"
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$UNIT/usr-upper,workdir=$UNIT/usr-work" "$R/usr"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t tmpfs -o size=1m,mode=755 tmpfs "$R/dev"
for node in null zero full random urandom tty; do
    touch "$R/dev/$node"
    mount --bind "/dev/$node" "$R/dev/$node"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o size=1m,mode=1777 tmpfs "$R/dev/shm"
mount -t tmpfs -o "size=${VOLATILE_MIB}m,mode=755" tmpfs "$R/var/volatile"
hostname "$UNIT_HOSTNAME"
exec chroot "$R" /sbin/init
"""

# What the simulator hears from a unit: ("up",) or ("shutdown", KIND) or ("gone", detail).
Event = tuple[str, ...]


class UnitSystem:
    """One boot of a unit: its namespaces, its init and everything that runs under it."""

    def __init__(self, unit: UnitRoot, hostname: str, volatile_mib: int,
                 on_event: Callable[[Event], Awaitable[None]] | None = None):
        self.unit = unit
        self.hostname = hostname
        self.volatile_mib = volatile_mib
        self.on_event = on_event
        self.process: asyncio.subprocess.Process | None = None
        self.init_pid: int | None = None
        self.up = asyncio.Event()
        self.shutdown_kind: str | None = None
        self._reader: asyncio.Task | None = None
        self._log = None

    async def start(self, timeout: float = 20.0) -> None:
        """Boot; returns when sshd and the runlevel 5 scripts have started."""
        self._log = open(os.path.join(self.unit.path, "namespace.log"), "ab")
        self.process = await asyncio.create_subprocess_exec(
            # HUP back to its default: the unit's init traps it to power off when unshare dies, and a shell cannot
            # trap a signal it was started with ignored (a simulator run under nohup left killed units running)
            "env", "--default-signal=HUP",
            "setpriv", "--pdeathsig", "KILL", "--",
            "unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child=HUP", "--",
            "/bin/sh", "-c", NAMESPACE_SCRIPT,
            env={"UNIT": self.unit.path, "VOLATILE_MIB": str(self.volatile_mib), "UNIT_HOSTNAME": self.hostname,
                 "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        self._reader = asyncio.get_running_loop().create_task(self._read_reports())
        try:
            await asyncio.wait_for(self.up.wait(), timeout)
        except asyncio.TimeoutError:
            await self.kill()
            raise RuntimeError(f"unit {self.hostname} at {self.unit.path} did not boot in {timeout:.0f} s; see "
                               f"{os.path.join(self.unit.path, 'namespace.log')} and root/var/log") from None

    def _find_init(self) -> int | None:
        """The host PID of the namespace's PID 1 (unshare's only child)."""
        assert self.process is not None
        try:
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as handle:
                children = handle.read().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    async def _read_reports(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                break
            words = tuple(line.decode("ascii", "replace").split())
            if not words:
                continue
            if words[0] == "up":
                self.init_pid = self._find_init()
                self.up.set()
            elif words[0] == "shutdown":
                self.shutdown_kind = words[1] if len(words) > 1 else "reboot"
            if self.on_event is not None:
                await self.on_event(words)
        await self.process.wait()
        if self.on_event is not None and self.shutdown_kind is None:
            await self.on_event(("gone", "init exited"))

    def volatile_path(self, device_path: str) -> str | None:
        """A path inside the running unit's own mounts (its tmpfs), through /proc; None when it is not running."""
        if self.init_pid is None:
            return None
        return f"/proc/{self.init_pid}/root/{device_path.lstrip('/')}"

    async def kill(self) -> None:
        """Power off at once: PID 1 of the namespace dies, and with it every process of the unit."""
        if self.init_pid is None and self.process is not None:
            self.init_pid = self._find_init()
        for pid in (self.init_pid, self.process.pid if self.process else None):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.process is not None and self.process.returncode is None:
            await self.process.wait()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
            self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.init_pid = None

    def process_names(self) -> list[str]:
        """The command names of the processes in the unit's PID namespace."""
        if self.init_pid is None:
            return []
        try:
            namespace = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        except OSError:
            return []
        names = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != namespace:
                    continue
                with open(f"/proc/{entry}/comm") as handle:
                    names.append(handle.read().strip())
            except OSError:
                continue
        return names

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The PIDs still running after ``timeout`` (for tests that check a unit left nothing behind). A pidfd becomes
    readable when its process ends."""
    pidfds = {}
    for pid in pids:
        try:
            pidfds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    try:
        poller = select.poll()
        for fd in pidfds:
            poller.register(fd, select.POLLIN)
        running = set(pidfds.values())
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline:
            for fd, _event in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                running.discard(pidfds[fd])
                poller.unregister(fd)
        return sorted(running)
    finally:
        for fd in pidfds:
            os.close(fd)
