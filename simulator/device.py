"""One simulated Conduit: what it is, and its boot cycle.

A device is either an AEP (mPower) unit or an mLinux unit. AEP units serve the
mPower HTTPS API (:mod:`simulator.mpower`, the simulator's own: nothing
real exists for it). A unit with SSH (an AEP unit once SSH is enabled, saved
and the unit restarted; every mLinux unit) is a :class:`~.unit.UnitSystem`:
real sshd, busybox, sudo, init scripts and ttn-multitech-cm's
``mlinux-firmware-upgrade`` in namespaces of its own. When such a unit shuts
down (busybox ``reboot``, the flash script, an mPower restart), this module
reads what the unit left in its ``/var/volatile`` before the namespace ends:
a staged flash makes it an mLinux unit after the flash time, with its
``/var/config`` kept; anything else is a reboot.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import signal
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import keys
from .catalogue import PRODUCTS, Identity, Product
from .images import read_rootfs_version
from .services import HttpsService
from .unit import Account, Event, UnitRoot, UnitSpec, UnitSystem

AEP_FIRMWARE = "5.3.8"
DEFAULT_MLINUX_VERSION = "5.3.31"
PASSWORD_SYMBOLS = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ")


@dataclass
class Knobs:
    """Per-device timings and faults (seconds; sizes in bytes)."""

    reboot_time: float = 2.0
    flash_time: float = 3.0
    boot_time: float = 1.0
    startup_delay: float = 0.0
    never_return: bool = False
    drop_upload_after: int = 0
    upload_rate: float = 0.0
    keep_host_keys: bool = True
    ntp_reachable: bool = True
    shutdown_grace: float = 0.5
    forwarder: bool = False  # mLinux: the packet forwarder runs, as after ttn-multitech-cm's make apply
    forwarder_crashes: bool = False
    clock_offset: float = 0.0  # seconds the unit's clock is off, until ntpdate sets it
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


UNIT_KNOBS = ("ntp_reachable", "shutdown_grace", "drop_upload_after", "upload_rate", "forwarder_crashes",
              "clock_offset")
STAGED_FLAG = "/var/volatile/do_flash_upgrade"
STAGED_IMAGE = "/var/volatile/flash-upgrade/upgrade.bin"
# what a unit's syslog says that tests look for, as simulator events
LOG_EVENTS = (
    (re.compile(r'sftp-server\[\d+\]: open "(?P<path>[^"]*)" flags \S*WRITE'), "sftp-open"),
    (re.compile(r"sudo:\s+(?P<user>\S+) : .*COMMAND=(?P<command>\S*mlinux-firmware-upgrade.*)$"), "firmware-upgrade"),
    (re.compile(r"sudo:\s+(?P<user>\S+) : .*COMMAND=(?P<command>.*)$"), "sudo"),
    (re.compile(r"sim: fault: (?P<detail>.*)$"), "fault"),
)


class Device:
    """One simulated gateway (see module docstring)."""

    def __init__(self, *, name: str, index: int, kind: str, product: Product, identity: Identity,
                 address: str, https_port: int, ssh_port: int, state_dir: str, knobs: Knobs,
                 mlinux_password: str, standard_ports: bool, checkout: str, aep_password: str | None = None,
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
        self.checkout = checkout
        self.firmware = "aep" if kind == "aep" else "mlinux"
        self.up = False
        self.phase = "off"  # off, booting, up, rebooting, flashing
        self.events: list[dict[str, Any]] = []
        self.mpower = MPowerState(saved=factory_remote_access())
        self.mpower.running = copy.deepcopy(self.mpower.saved)
        self.last_flash: dict[str, Any] = {}
        self.fault_cleared = asyncio.Event()
        self.jumphost_pid: int | None = None  # where the tunnel's remote port is looked for (its network namespace)
        self.host_key: bytes = b""
        self.host_key_pub: str = ""
        self.tls_fingerprint = ""
        self.system: UnitSystem | None = None
        self.https: HttpsService | None = None
        self._cycle: asyncio.Task | None = None
        self._log_offset = 0
        self.unit = UnitRoot(os.path.join(state_dir, "unit"))
        os.makedirs(self.unit.path, exist_ok=True)
        self.cert_path = os.path.join(state_dir, "https.crt")
        self.cert_key_path = os.path.join(state_dir, "https.key")
        if host_key is not None:
            self._take_host_key(host_key)
        if self.firmware == "aep":
            self.tls_fingerprint = keys.write_self_signed_cert(self.cert_path, self.cert_key_path,
                                                               product.product_type)
            self.https = HttpsService(self)
            if aep_password is not None:
                self._commission("mtadm", aep_password)
                if aep_ssh_enabled:
                    ssh = self.mpower.saved["ssh"]
                    ssh.update(enabled=True, lan=True, wan=False, port=22)
                    self.mpower.running = copy.deepcopy(self.mpower.saved)
        elif not self.host_key:
            self._take_host_key(keys.new_rsa_host_key(f"root@{product.product_type}"))
        self.unit.build(self.unit_spec(), checkout)

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

    # --- the unit's files --------------------------------------------------------

    def accounts(self) -> list[Account]:
        if self.firmware == "mlinux":
            return [Account("root", 0, 0, "root", "/home/root", self.mlinux_password),
                    Account("mtadm", 1000, 1000, "mtadm", "/home/mtadm", self.mlinux_password, sudo=True)]
        return [Account("root", 0, 0, "root", "/home/root", None)] + [
            Account(user, 1001 + number, 1000, "admin", f"/home/{user}", password, sudo=True)
            for number, (user, password) in enumerate(self.mpower.users.items())]

    def unit_spec(self) -> UnitSpec:
        return UnitSpec(firmware=self.firmware, hostname=self.product.product_type, address=self.address,
                        ssh_port=self.listen_ssh_port, sysfs=self.sysfs_values(), accounts=self.accounts(),
                        host_keys=[(self.host_key, self.host_key_pub)] if self.host_key else [],
                        version=self.mlinux_version if self.firmware == "mlinux" else AEP_FIRMWARE,
                        volatile_mib=self.knobs.volatile_mib, ntp_reachable=self.knobs.ntp_reachable,
                        shutdown_grace=self.knobs.shutdown_grace, forwarder=self.knobs.forwarder,
                        forwarder_crashes=self.knobs.forwarder_crashes, clock_offset=self.knobs.clock_offset)

    def set_knobs(self, values: dict[str, Any]) -> None:
        """Change knobs; those the unit's own scripts read take effect in the running unit."""
        self.knobs.update(values)
        self._write_unit_knobs()

    def _write_unit_knobs(self) -> None:
        for name in UNIT_KNOBS:
            value = getattr(self.knobs, name)
            self.unit.set_knob(name, None if name == "drop_upload_after" and not value else value)

    def _take_host_key(self, key: tuple[bytes, bytes]) -> None:
        """``key``: (OpenSSH private key, public key line), as keys.new_rsa_host_key makes it."""
        self.host_key, self.host_key_pub = key[0], key[1].decode().strip()

    def _commission(self, username: str, password: str) -> None:
        self.mpower.commissioned = True
        self.mpower.users[username] = password

    # --- what a running unit shows ---------------------------------------------------

    def harvest_log(self) -> None:
        """Turn what the running unit's syslog gained since last time into events (it lives in /var/volatile,
        gone with the next boot)."""
        path = self.system.volatile_path("/var/log/messages") if self.system is not None else None
        if path is None:
            return
        try:
            with open(path, "rb") as handle:
                handle.seek(self._log_offset)
                data = handle.read()
        except OSError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        self._log_offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            for pattern, kind in LOG_EVENTS:
                found = pattern.search(line)
                if found:
                    self.log(kind, **found.groupdict())
                    if kind == "fault":  # the unit's SFTP server fires it once, and removes its knob
                        self.knobs.drop_upload_after = 0
                    break

    def tunnel_status(self) -> str:
        """``up`` when the jumphost listens on the tunnel's remote port, ``stopped`` when no tunnel process runs in
        the unit, ``connecting`` otherwise."""
        if self.system is None or not self.system.running:
            return "stopped"
        names = self.system.process_names()
        if not {"autossh", "ssh"} & set(names):
            return "stopped"
        port = self._tunnel_remote_port()
        if port is not None and self.jumphost_pid is not None and _listening(self.jumphost_pid, port):
            return "up"
        return "connecting"

    def _tunnel_remote_port(self) -> int | None:
        try:
            with open(self.unit.resolve("/etc/default/ssh_tunnel")) as handle:
                text = handle.read()
        except OSError:
            return None
        found = re.search(r"^REMOTE_PORT=[\"']?(\d+)", text, re.MULTILINE)
        return int(found.group(1)) if found else None

    # --- the boot cycle ------------------------------------------------------------

    async def start(self) -> None:
        if self.knobs.startup_delay > 0:
            self.phase = "booting"
            self._cycle = asyncio.get_running_loop().create_task(self._delayed_start())
            return
        await self._boot()

    async def _delayed_start(self) -> None:
        await asyncio.sleep(self.knobs.startup_delay)
        await self._boot()

    @property
    def _cycling(self) -> bool:
        return self._cycle is not None and not self._cycle.done()

    def _start_cycle(self, kind: str, **options: Any) -> None:
        self._cycle = asyncio.get_running_loop().create_task(self._run_cycle(kind, **options))

    def schedule_cycle(self, kind: str) -> None:
        """A restart asked for over mPower: the unit shuts down as it would (its runlevel 6 scripts run, a
        flash it staged goes ahead) once the reply is on its way."""
        if self._cycling:
            return
        self.log("reboot", reason=kind)
        if self.system is not None and self.system.init_pid is not None:
            asyncio.get_running_loop().call_later(0.15, self._signal_init, signal.SIGTERM)
        else:
            self._start_cycle(kind, wait=0.15)

    def _signal_init(self, signum: int) -> None:
        if self.system is not None and self.system.init_pid is not None:
            try:
                os.kill(self.system.init_pid, signum)
            except ProcessLookupError:
                pass

    def power_cycle(self) -> None:
        """Power off and on: nothing in /var/volatile survives, no script runs."""
        if self._cycling:
            return
        self.log("reboot", reason="power-cycle")
        self._start_cycle("power-cycle", read_staged=False)

    async def _unit_event(self, event: Event) -> None:
        if self._cycling:
            return
        if event[0] == "shutdown":
            self.log("reboot", reason=event[1])
            self._start_cycle(event[1])
        elif event[0] == "gone":
            self.log("crash", detail=" ".join(event[1:]))
            self._start_cycle("crash", read_staged=False)

    def _staged_flash(self) -> dict[str, Any] | None:
        """What mlinux-firmware-upgrade left for the flash, read inside the unit's own /var/volatile."""
        assert self.system is not None
        image = self.system.volatile_path(STAGED_IMAGE)
        flag = self.system.volatile_path(STAGED_FLAG)
        if image is None or flag is None or not os.path.isfile(image):
            return None
        staged: dict[str, Any] = {"flag": os.path.exists(flag), "model": "", "version": None}
        try:
            with tarfile.open(image, "r:") as archive:
                for member in archive:
                    handle = archive.extractfile(member) if member.isfile() else None
                    if handle is None:
                        continue
                    if member.name == "model":
                        staged["model"] = handle.read(64).decode("ascii", "replace").strip()
                    elif member.name == "rootfs.jffs2":
                        staged["version"] = read_rootfs_version(handle.read(256))
                        break
        except (tarfile.TarError, OSError):
            pass
        return staged

    async def _run_cycle(self, kind: str, wait: float = 0.0, read_staged: bool = True) -> None:
        await asyncio.sleep(wait)
        self.phase = "rebooting"
        staged = None
        if self.system is not None:
            self.harvest_log()
            if read_staged:
                staged = await asyncio.to_thread(self._staged_flash)
        await self._stop_services(kind)
        if staged and staged["flag"]:
            self.phase = "flashing"
            self.last_flash = {"model": staged["model"], "version": staged["version"] or DEFAULT_MLINUX_VERSION,
                               "t": time.time()}
            # made while the flash runs, in a thread: the event loop serves every other unit meanwhile
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
            if staged:
                self.log("flash-skipped", reason="the shutdown scripts removed the staged flash (on a cellular unit: "
                                                 "the umountfs hardware check)")
            await asyncio.sleep(self.knobs.reboot_time if self.firmware == "aep" else self.knobs.boot_time)
            if self.firmware == "mlinux" and self.knobs.never_return:
                self.log("never-return", detail="device did not come back from the reboot")
                await self.fault_cleared.wait()
                self.log("fault-cleared")
            if self.firmware == "aep":
                self.mpower.running = copy.deepcopy(self.mpower.saved)
                self.mpower.tokens.clear()
        await self._boot()

    async def _become_mlinux(self, new_key: asyncio.Future | None) -> None:
        self.mlinux_version = self.last_flash.get("version", DEFAULT_MLINUX_VERSION)
        if new_key is not None:
            self._take_host_key(await new_key)
        self.firmware = "mlinux"
        self.mpower = MPowerState()
        self.https = None
        if self.knobs.post_flash_address:
            self.address = self.knobs.post_flash_address
        await asyncio.to_thread(self.unit.build, self.unit_spec(), self.checkout, True)
        self.log("flashed", version=self.mlinux_version)

    async def _boot(self) -> None:
        if self.https is not None:
            await self.https.start()
        if self.ssh_enabled:
            if not self.host_key:
                self._take_host_key(await asyncio.to_thread(keys.new_rsa_host_key,
                                                            f"admin@{self.product.product_type}"))
            spec = self.unit_spec()
            await asyncio.to_thread(self.unit.configure, spec)
            self._write_unit_knobs()
            self._log_offset = 0
            self.system = UnitSystem(self.unit, spec.hostname, spec.volatile_mib, self._unit_event)
            await self.system.start()
        self.up = True
        self.phase = "up"
        self.log("up", state=self.state)

    async def _stop_services(self, reason: str) -> None:
        system, self.system = self.system, None
        if system is not None:
            await system.kill()
        if self.https is not None:
            await self.https.stop()
        self.up = False
        self.log("down", reason=reason)

    async def stop(self) -> None:
        if self._cycle is not None:
            self._cycle.cancel()
        await self._stop_services("shutdown")

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
            "unit_root": self.unit.root,
            "credentials": {
                "aep": {"username": next(iter(self.mpower.users), "mtadm"),
                        "password": next(iter(self.mpower.users.values()), None)},
                "mlinux": {"username": "mtadm", "password": self.mlinux_password,
                           "root_password": self.mlinux_password},
            },
            "knobs": dict(vars(self.knobs)),
        }
        return entry


def _listening(pid: int, port: int) -> bool:
    """Whether something listens on TCP ``port`` in the network namespace of process ``pid``."""
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return False


def product_for(spec: str | None, product_type: str, cellular: bool) -> Product:
    from .catalogue import CELLULAR_PRODUCT, DEFAULT_PRODUCT
    if spec:
        if spec not in PRODUCTS:
            raise KeyError(f"unknown product {spec!r}; known: {', '.join(sorted(PRODUCTS))}")
        return PRODUCTS[spec]
    return PRODUCTS[(CELLULAR_PRODUCT if cellular else DEFAULT_PRODUCT)[product_type]]
