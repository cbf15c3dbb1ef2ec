"""One simulated Conduit: its state, its filesystem, its boot cycle.

A device is either an AEP (mPower) unit or an mLinux unit. AEP units serve the
mPower HTTPS API and, once SSH is enabled and saved and the unit restarted,
SSH and SFTP. ``mlinux-firmware-upgrade`` turns an AEP unit into an mLinux unit
after a reboot that drops every service for the flash time. The network side
(HTTPS, SSH, tunnel) lives in :mod:`tests.simulator.services`; this module
holds what the device *is*.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import posixpath
import re
import secrets
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import keys
from .catalogue import PRODUCTS, Identity, Product
from .images import read_rootfs_version
from .shell import Io
from .unit import links_into_var_config
from .vfs import Account, DeviceFs, Mount, VfsError

if TYPE_CHECKING:
    from .services import DeviceServices

AEP_FIRMWARE = "5.3.8"
DEFAULT_MLINUX_VERSION = "5.3.31"
PASSWORD_SYMBOLS = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ")

BUSYBOX_APPLETS = ("sh", "ash", "cat", "cp", "mv", "rm", "rmdir", "ln", "ls", "mkdir", "chmod", "chown", "touch",
                   "grep", "sed", "stat", "readlink", "df", "date", "hostname", "uname", "sleep", "sync",
                   "echo", "printf", "true", "false", "pidof")
USR_BIN = ("sudo", "md5sum", "sha256sum", "sort", "head", "tail", "tee", "wc", "basename", "dirname", "env", "id",
           "whoami", "pgrep", "logger", "test", "[")
SBIN = ("reboot", "shutdown", "start-stop-daemon")
USR_SBIN = ("update-rc.d", "ntpdate", "mlinux-firmware-upgrade", "mts-io-sysfs")

UMOUNTFS_CELLULAR_CHECK = "mts_fw_check_hw_support_mp"


@dataclass
class Knobs:
    """Per-device timings and faults (seconds; sizes in bytes)."""

    reboot_time: float = 2.0
    flash_time: float = 3.0
    boot_time: float = 1.0
    startup_delay: float = 0.0
    never_return: bool = False
    drop_upload_after: int = 0
    keep_host_keys: bool = False
    ntp_reachable: bool = False
    volatile_mib: int = 128
    post_flash_address: str | None = None

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if not hasattr(self, name):
                raise KeyError(f"unknown knob {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            elif isinstance(current, float):
                value = float(value)
            elif isinstance(current, int):
                value = int(value)
            setattr(self, name, value)


@dataclass
class AasSession:
    username: str
    step: str  # "password" or "confirm"
    password: str = ""


@dataclass
class ApiToken:
    user: str
    client: str
    last_used: float


@dataclass
class MPowerState:
    """What the mPower firmware keeps: users, commissioning, saved vs running config."""

    commissioned: bool = False
    users: dict[str, str] = field(default_factory=dict)
    aas: dict[str, AasSession] = field(default_factory=dict)
    tokens: dict[str, ApiToken] = field(default_factory=dict)
    saved: dict[str, Any] = field(default_factory=dict)
    running: dict[str, Any] = field(default_factory=dict)


def factory_remote_access() -> dict[str, Any]:
    return {
        "timeoutSeconds": 300,
        "http": {"enabled": True, "port": 80, "lan": True, "wan": False, "redirectToHttps": True},
        "https": {"enabled": True, "port": 443, "lan": True, "wan": False},
        "ssh": {"enabled": False, "port": 22, "lan": False, "wan": False, "idleTimeoutSeconds": 0,
                "passwordAuthentication": True, "publicKeyAuthentication": False,
                "userLockout": {"enabled": True, "attempts": 10, "lockoutTimeout": 300}},
        "reverseSsh": {"enabled": False, "server": "", "port": 22, "remotePort": 0},
        "icmp": {"enabled": True, "lan": True, "wan": False, "respondToBroadcast": False},
        "snmp": {"enabled": False, "port": 161, "lan": True, "wan": False},
    }


def password_problem(password: str, username: str) -> str | None:
    """Why mPower would refuse this password, or None (rules: reference §3.2)."""
    if len(password) < 8:
        return "Password must be at least 8 characters long"
    if len(password) > 64:
        return "Password must be at most 64 characters long"
    classes = sum((
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(c in PASSWORD_SYMBOLS or not c.isalnum() for c in password),
    ))
    if classes < 3:
        return ("Password must contain at least three of the following: lower case letters, upper case "
                "letters, digits and special characters")
    if password == username:
        return "Password must not be the same as the user name"
    return None


class Device:
    """One simulated gateway (see module docstring)."""

    def __init__(self, *, name: str, index: int, kind: str, product: Product, identity: Identity,
                 address: str, https_port: int, ssh_port: int, state_dir: str, knobs: Knobs,
                 mlinux_password: str, standard_ports: bool, aep_password: str | None = None,
                 aep_ssh_enabled: bool = False, mlinux_version: str = DEFAULT_MLINUX_VERSION,
                 host_key: tuple[bytes, bytes] | None = None):
        self.name = name
        self.index = index
        self.product = product
        self.identity = identity
        self.address = address
        self.https_port = https_port
        self.ssh_port = ssh_port
        self.state_dir = state_dir
        self.knobs = knobs
        self.mlinux_password = mlinux_password
        self.mlinux_version = mlinux_version
        self.standard_ports = standard_ports
        self.firmware = "aep" if kind == "aep" else "mlinux"
        self.up = False
        self.phase = "off"  # off, booting, up, rebooting, flashing
        self.events: list[dict[str, Any]] = []
        self.mpower = MPowerState(saved=factory_remote_access())
        self.mpower.running = copy.deepcopy(self.mpower.saved)
        self.tunnel_status = "stopped"
        self.last_flash: dict[str, Any] = {}
        self.fault_cleared = asyncio.Event()
        self.services: DeviceServices | None = None
        self.host_key: bytes = b""
        self.host_key_pub: str = ""
        self.tls_fingerprint = ""
        self._cycle: asyncio.Task | None = None
        self.fs = DeviceFs(root=os.path.join(state_dir, "root"))
        os.makedirs(self.fs.root, exist_ok=True)
        self.cert_path = os.path.join(state_dir, "https.crt")
        self.cert_key_path = os.path.join(state_dir, "https.key")
        if self.firmware == "aep":
            self.tls_fingerprint = keys.write_self_signed_cert(self.cert_path, self.cert_key_path,
                                                               product.product_type)
            self._build_aep_rootfs()
            if aep_password is not None:
                self._commission("mtadm", aep_password)
                if aep_ssh_enabled:
                    ssh = self.mpower.saved["ssh"]
                    ssh.update(enabled=True, lan=True, wan=False, port=22)
                    self.mpower.running = copy.deepcopy(self.mpower.saved)
        else:
            if host_key is not None:
                self._take_host_key(host_key)
            else:
                self._new_host_key(f"root@{product.product_type}")
            self._build_mlinux_rootfs(keep=False)

    # --- identity ---------------------------------------------------------

    @property
    def state(self) -> str:
        if not self.up:
            return "down"
        if self.firmware == "mlinux":
            return "mlinux"
        return "aep" if self.mpower.commissioned else "aep_uncommissioned"

    @property
    def ssh_enabled(self) -> bool:
        ssh = self.mpower.saved.get("ssh", {}) if self.firmware == "aep" else {"enabled": True, "lan": True}
        return bool(ssh.get("enabled")) and bool(ssh.get("lan"))

    @property
    def listen_ssh_port(self) -> int:
        if self.firmware == "aep" and self.standard_ports:
            try:
                return int(self.mpower.saved["ssh"]["port"])
            except (KeyError, TypeError, ValueError):
                return 22
        return self.ssh_port

    def sysfs_values(self) -> dict[str, str]:
        p, ident = self.product, self.identity
        values = {
            "product-id": p.product_id,
            "device-id": ident.serial,
            "hw-version": p.hw_version,
            "mac-eth": ident.mac.upper(),
            "uuid": ident.uuid,
            "vendor-id": "Multi-Tech Systems",
            "lora/eui": ident.lora_eui.upper(),
            "lora/product-id": p.lora_product_id,
            "lora/hw-version": p.lora_hw_version,
            "has-radio": "1" if p.cellular else "0",
        }
        if p.product_type == "mtcdt":
            for key in ("eui", "product-id", "hw-version"):
                values[f"ap1/{key}"] = values[f"lora/{key}"]
        if p.cellular:
            values["imei"] = ident.imei
        return values

    def system_object(self) -> dict[str, Any]:
        p, ident = self.product, self.identity
        system = {
            "productId": p.product_id,
            "deviceId": ident.serial,
            "hardwareVersion": p.hw_version,
            "firmware": AEP_FIRMWARE,
            "firmwareDate": "2021-06-24",
            "macAddress": ident.mac.upper(),
            "loraEui": ident.lora_eui.upper(),
            "loraProductId": p.lora_product_id,
            "loraHwVersion": p.lora_hw_version,
            "uuid": ident.uuid,
            "vendorId": "Multi-Tech Systems",
            "deviceHostname": p.product_type,
            "capabilities": {"lora": True, "cell": p.cellular, "wifi": False, "gps": False},
            "dbDirty": self.mpower.running != self.mpower.saved,
            "firstTimeSetup": not self.mpower.commissioned,
        }
        if p.cellular:
            system["imei"] = ident.imei
        return system

    def log(self, kind: str, **detail: Any) -> None:
        self.events.append({"t": round(time.time(), 3), "kind": kind, **detail})

    # --- mPower ----------------------------------------------------------------

    def _commission(self, username: str, password: str) -> None:
        self.mpower.commissioned = True
        self.mpower.users[username] = password
        self.fs.accounts[username] = Account(username, 1000 + len(self.mpower.users), 1000, f"/home/{username}",
                                             "admin")
        home = f"/home/{username}"
        if not self.fs.exists(home):
            self.fs.mkdir(home, 0o755)
            self.fs.set_owner(home, username, "admin")

    # --- filesystem images ---------------------------------------------------

    def _install_commands(self, extra_usr_bin: tuple[str, ...] = ()) -> None:
        for directory, names in (("/bin", BUSYBOX_APPLETS), ("/usr/bin", USR_BIN + extra_usr_bin),
                                 ("/sbin", SBIN), ("/usr/sbin", USR_SBIN)):
            for name in names:
                path = posixpath.join(directory, name)
                if not self.fs.exists(path):
                    self.fs.write_text(path, f"#!/bin/sh\n# simulated {name}\n", mode=0o755)

    def _base_tree(self) -> None:
        fs = self.fs
        for path, mode in (("/bin", 0o755), ("/sbin", 0o755), ("/usr", 0o755), ("/usr/bin", 0o755),
                           ("/usr/sbin", 0o755), ("/etc", 0o755), ("/etc/init.d", 0o755), ("/etc/default", 0o755),
                           ("/etc/ssh", 0o755), ("/home", 0o755), ("/home/root", 0o700), ("/var", 0o755),
                           ("/var/config", 0o755), ("/var/volatile", 0o755), ("/media", 0o755)):
            fs.mkdir(path, mode, parents=True)
        for level in "0123456S":
            fs.mkdir(f"/etc/rc{level}.d", 0o755, parents=True)
        fs.mounts = [
            Mount("/", "jffs2", "/dev/root", 262144),
            Mount("/var/config", "jffs2", "/dev/mtdblock5", 32768),
            Mount("/var/volatile", "tmpfs", "tmpfs", self.knobs.volatile_mib * 1024, wiped_on_reboot=True),
        ]
        self._volatile_dirs()
        fs.write_text("/etc/init.d/functions", "# simulated /etc/init.d/functions\n", mode=0o644)
        fs.write_text("/etc/hostname", f"{self.product.product_type}\n")
        fs.accounts["root"] = Account("root", 0, 0, "/home/root", "root")

    def _volatile_dirs(self) -> None:
        fs = self.fs
        fs.mkdir("/var/volatile/tmp", 0o1777, parents=True)
        fs.chmod("/var/volatile/tmp", 0o1777)
        fs.mkdir("/var/volatile/log", 0o755, parents=True)
        if not fs.exists("/tmp", follow=False):
            fs.symlink("var/volatile/tmp", "/tmp")

    def _build_aep_rootfs(self) -> None:
        self._base_tree()
        self._install_commands()
        umountfs = "#!/bin/sh\n# simulated umountfs\n"
        if self.product.cellular:
            umountfs += f'if [ -f /var/volatile/do_flash_upgrade ]; then\n\tif ! {UMOUNTFS_CELLULAR_CHECK} ' \
                        f'"$mpower_version" "$hw_version"; then\n\t\trm -f /var/volatile/do_flash_upgrade\n\tfi\nfi\n'
        umountfs += "umount -a -r\n"
        self.fs.write_text("/etc/init.d/umountfs", umountfs, mode=0o755)
        self.fs.write_text("/etc/mpower-version", f"{AEP_FIRMWARE}\n")
        self.fs.mkdir("/var/config/db", 0o700, parents=True)

    def _build_mlinux_rootfs(self, keep: bool) -> None:
        """A fresh mLinux root; with ``keep`` the persistent /var/config survives (a flash)."""
        fs = self.fs
        preserved_links: list[tuple[str, str]] = []
        if keep:
            preserved_links = links_into_var_config(self.fs.root)
            for name in os.listdir(fs.root):
                if name == "var":
                    continue
                fs.remove("/" + name, recursive=True)
            for name in fs.listdir("/var"):
                if name != "config":
                    fs.remove("/var/" + name, recursive=True)
        else:
            shutil.rmtree(fs.root)
            os.makedirs(fs.root)
        fs.owners = {k: v for k, v in fs.owners.items() if k.startswith("/var/config")}
        fs.accounts = {}
        self._base_tree()
        self._install_commands(extra_usr_bin=("autossh",))
        fs.accounts["mtadm"] = Account("mtadm", 1000, 1000, "/home/mtadm", "mtadm")
        fs.mkdir("/home/mtadm", 0o755)
        fs.set_owner("/home/mtadm", "mtadm", "mtadm")
        fs.write_text("/etc/mlinux-version",
                      f"mLinux {self.mlinux_version}\nBuilt from branch: ttni-5.3\n"
                      f"Revision: {hashlib.sha1(self.mlinux_version.encode()).hexdigest()}\n")
        fs.write_bytes("/etc/ssh/ssh_host_rsa_key", self.host_key, mode=0o600)
        fs.write_text("/etc/ssh/ssh_host_rsa_key.pub", self.host_key_pub.strip() + "\n", mode=0o644)
        fs.write_text("/etc/init.d/umountfs", "#!/bin/sh\n# simulated umountfs\numount -a -r\n", mode=0o755)
        fs.write_text("/etc/init.d/sshd", "#!/bin/sh\n# simulated sshd init script\n", mode=0o755)
        for link, target in preserved_links:
            if not fs.exists(posixpath.dirname(link)):
                fs.mkdir(posixpath.dirname(link), 0o755, parents=True)
            if not fs.exists(link, follow=False):
                fs.symlink(target, link)

    def _new_host_key(self, comment: str) -> None:
        self._take_host_key(keys.new_rsa_host_key(comment))

    def _take_host_key(self, key: tuple[bytes, bytes]) -> None:
        """``key``: (OpenSSH private key, public key line), as keys.new_rsa_host_key makes it."""
        self.host_key, self.host_key_pub = key[0], key[1].decode().strip()

    # --- shell hooks -------------------------------------------------------------

    def sysfs(self, attribute: str) -> str | None:
        return self.sysfs_values().get(attribute)

    def check_password(self, user: str, password: str) -> bool:
        if self.firmware == "aep":
            return self.mpower.users.get(user) == password
        return user in ("root", "mtadm") and secrets.compare_digest(password, self.mlinux_password)

    def may_sudo(self, user: str) -> bool:
        return user in self.mpower.users if self.firmware == "aep" else user == "mtadm"

    def process_names(self) -> list[str]:
        names = ["init", "syslogd", "sshd"]
        if self.firmware == "aep":
            names.append("lighttpd")
        if self.services is not None and self.services.tunnel_running:
            names.append("autossh")
        return names

    def ntp_sync(self, io: Io) -> int:
        if self.knobs.ntp_reachable:
            io.stdout.write(time.strftime("%d %b %H:%M:%S") + " ntpdate[812]: adjust time server 127.0.0.123 "
                            "offset 0.000412 sec\n")
            return 0
        io.stderr.write(time.strftime("%d %b %H:%M:%S") + " ntpdate[812]: no server suitable for "
                        "synchronization found\n")
        return 1

    async def init_script(self, name: str, action: str, io: Io) -> int:
        if name != "ssh_tunnel":
            return 0
        assert self.services is not None
        return await self.services.tunnel_init_script(action, io)

    async def reboot(self, io: Io) -> int:
        io.stderr.write("\nBroadcast message from root@" + self.product.product_type +
                        ":\n\nThe system is going down for reboot NOW!\n")
        self.schedule_cycle("reboot")
        await asyncio.sleep(3600)
        return 0

    async def firmware_upgrade(self, path: str, io: Io) -> int:
        """The device-side upgrade script (reference §4): checks, then reboot into the flash."""
        def say(message: str) -> None:
            io.stderr.write(f"firmware_upgrade: {message}\n")

        fs = self.fs
        try:
            host = fs.host_path(path)
            if not os.path.isfile(host):
                raise VfsError(2, path)
        except VfsError:
            say(f"{path}: No such file or directory")
            return 1
        self.log("firmware-upgrade", path=path)
        try:
            archive = tarfile.open(host, "r:")
        except (tarfile.TarError, OSError):
            io.stderr.write("tar: invalid tar magic\n")
            say("Wrong firmware for this hardware")
            return 1
        with archive:
            try:
                archive.getmembers()
            except (tarfile.TarError, OSError):
                pass  # a truncated archive: keep the members read before the end
            members = {m.name: m for m in archive.members}
            model_member = members.get("model")
            model = ""
            if model_member is not None:
                try:
                    model = archive.extractfile(model_member).read().decode("ascii", "replace").strip()
                except (tarfile.TarError, OSError, AttributeError):
                    model = ""
            hw_version = self.product.hw_version
            if not model or not hw_version.lower().startswith(model.lower() + "-"):
                say("Wrong firmware for this hardware")
                say(f"hardware {hw_version}, firmware model '{model or 'none'}'")
                return 1
            version = None
            for name in ("bstrap.bin", "uboot.bin", "uImage.bin", "config.jffs2", "oem.jffs2", "rootfs.jffs2"):
                if name not in members:
                    continue
                say(f"Checking MD5 for {name}...")
                expected = ""
                if f"{name}.md5" in members:
                    try:
                        expected = archive.extractfile(members[f"{name}.md5"]).read().decode().split()[0]
                    except (tarfile.TarError, OSError, IndexError, AttributeError):
                        expected = ""
                digest = hashlib.md5()
                head = b""
                try:
                    handle = archive.extractfile(members[name])
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        if not head:
                            head = block[:256]
                        digest.update(block)
                    complete = True
                except (tarfile.TarError, OSError):
                    io.stderr.write("tar: short read\n")
                    complete = False
                if not complete or digest.hexdigest() != expected.lower():
                    io.stdout.write("-: FAILED\n")
                    io.stderr.write("md5sum: WARNING: 1 of 1 computed checksums did NOT match\n")
                    say("MD5 check failed, upgrade aborted")
                    return 1
                io.stdout.write("-: OK\n")
                if name == "rootfs.jffs2":
                    version = read_rootfs_version(head)
        fs.mkdir("/var/volatile/flash-upgrade", 0o755, parents=True)
        fs.rename(path, "/var/volatile/flash-upgrade/upgrade.bin")
        fs.write_bytes("/var/volatile/do_flash_upgrade", b"")
        self.last_flash = {"model": model, "version": version or DEFAULT_MLINUX_VERSION, "t": time.time()}
        say("Rebooting")
        io.stderr.write("\nBroadcast message from root@" + self.product.product_type +
                        ":\n\nThe system is going down for reboot NOW!\n")
        self.schedule_cycle("flash")
        await asyncio.sleep(3600)
        return 1

    # --- the boot cycle ------------------------------------------------------------

    async def start(self) -> None:
        assert self.services is not None
        if self.knobs.startup_delay > 0:
            self.phase = "booting"
            self._cycle = asyncio.get_running_loop().create_task(self._delayed_start())
            return
        await self._boot()

    async def _delayed_start(self) -> None:
        await asyncio.sleep(self.knobs.startup_delay)
        await self._boot()

    def schedule_cycle(self, kind: str) -> None:
        """Reboot soon (after the caller's reply is on its way): restart, reboot or flash."""
        if self._cycle is not None and not self._cycle.done():
            return
        self.log("reboot", reason=kind)
        self._cycle = asyncio.get_running_loop().create_task(self._run_cycle(kind))

    async def _run_cycle(self, kind: str) -> None:
        assert self.services is not None
        await asyncio.sleep(0.15)
        self.phase = "flashing" if kind == "flash" else "rebooting"
        await self.services.stop(reason=kind)
        self.up = False
        flash_pending = self.fs.exists("/var/volatile/do_flash_upgrade")
        blocked = (flash_pending and self.firmware == "aep" and self.product.cellular
                   and self._cellular_check_active())
        if flash_pending and not blocked:
            # the new host key is made while the flash runs, in a thread: thirty of them at the end of the flash
            # would hold up every unit of the simulator at the moment they all boot
            new_key = None
            if not self.knobs.keep_host_keys or not self.host_key:
                new_key = asyncio.ensure_future(asyncio.to_thread(keys.new_rsa_host_key,
                                                                  f"root@{self.product.product_type}"))
            await asyncio.sleep(self.knobs.flash_time)
            if self.knobs.never_return:
                self.log("never-return", detail="device did not come back from the flash")
                await self.fault_cleared.wait()
                self.log("fault-cleared")
            await self._become_mlinux(new_key)
        else:
            if blocked:
                self.log("flash-skipped", reason="umountfs hardware check refused the flash on a cellular unit")
            await asyncio.sleep(self.knobs.reboot_time if self.firmware == "aep" else self.knobs.boot_time)
            if self.firmware == "aep":
                self.mpower.running = copy.deepcopy(self.mpower.saved)
                self.mpower.tokens.clear()
        self.fs.wipe("/var/volatile")
        self._volatile_dirs()
        await self._boot()

    def _cellular_check_active(self) -> bool:
        try:
            text = self.fs.read_text("/etc/init.d/umountfs")
        except VfsError:
            return False
        return any(re.match(rf"\s*if\s+!\s*{UMOUNTFS_CELLULAR_CHECK}\b", line) for line in text.splitlines())

    async def _become_mlinux(self, new_key: asyncio.Future | None) -> None:
        self.mlinux_version = self.last_flash.get("version", DEFAULT_MLINUX_VERSION)
        if new_key is not None:
            self._take_host_key(await new_key)
        self.firmware = "mlinux"
        self.mpower = MPowerState()
        self._build_mlinux_rootfs(keep=True)
        if self.knobs.post_flash_address:
            self.address = self.knobs.post_flash_address
        self.log("flashed", version=self.mlinux_version)

    async def _boot(self) -> None:
        assert self.services is not None
        await self.services.start()
        self.up = True
        self.phase = "up"
        self.log("up", state=self.state)
        if self.firmware == "mlinux" and self._tunnel_enabled_at_boot():
            await self.services.tunnel_start()

    def _tunnel_enabled_at_boot(self) -> bool:
        directory = "/etc/rc5.d"
        if not self.fs.exists(directory):
            return False
        return any(re.fullmatch(r"S\d\dssh_tunnel", n) and self.fs.exists(f"{directory}/{n}")
                   for n in self.fs.listdir(directory))

    async def power_cycle(self) -> None:
        self.schedule_cycle("power-cycle")

    def manifest_entry(self) -> dict[str, Any]:
        entry = {
            "name": self.name,
            "state": self.state,
            "firmware": self.firmware,
            "address": self.address,
            "https_port": self.https_port if self.firmware == "aep" else None,
            "ssh_port": self.listen_ssh_port,
            "mac": self.identity.mac,
            "serial": self.identity.serial,
            "lora_eui": self.identity.lora_eui,
            "product_id": self.product.product_id,
            "product_type": self.product.product_type,
            "hw_version": self.product.hw_version,
            "cellular": self.product.cellular,
            "tls_fingerprint_sha256": self.tls_fingerprint or None,
            "host_key": self.host_key_pub or None,
            "mlinux_version": self.mlinux_version if self.firmware == "mlinux" else None,
            "credentials": {
                "aep": {"username": next(iter(self.mpower.users), "mtadm"),
                        "password": next(iter(self.mpower.users.values()), None)},
                "mlinux": {"username": "mtadm", "password": self.mlinux_password,
                           "root_password": self.mlinux_password},
            },
            "knobs": dict(vars(self.knobs)),
        }
        return entry


def product_for(spec: str | None, product_type: str, cellular: bool) -> Product:
    from .catalogue import CELLULAR_PRODUCT, DEFAULT_PRODUCT
    if spec:
        if spec not in PRODUCTS:
            raise KeyError(f"unknown product {spec!r}; known: {', '.join(sorted(PRODUCTS))}")
        return PRODUCTS[spec]
    return PRODUCTS[(CELLULAR_PRODUCT if cellular else DEFAULT_PRODUCT)[product_type]]
