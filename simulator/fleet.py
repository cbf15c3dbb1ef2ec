"""A fleet of simulated devices in one process, its manifest and its control API.

The manifest (YAML) is written once every device answers; it is what tests and
the demo read to find devices and credentials. The control API (plain HTTP on
loopback, address in the manifest) lets a test read a device's live state and
event log, change its knobs, power-cycle it or clear a fault while it runs, and
restart the jumphost.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from . import keys
from .catalogue import make_identity
from .device import Device, Knobs, product_for
from .jumphost import Jumphost, free_ports
from .services import in_private_network_namespace, open_listener
from .unit import require_parts

FLEET_KEY = web.AppKey("fleet", object)


@dataclass
class DeviceSpec:
    """How one device starts (product, pre-commissioning) and its knobs."""

    kind: str  # aep / mlinux
    product_type: str = "mtcdt"
    product: str | None = None
    cellular: bool = False
    commissioned: bool = False
    ssh_enabled: bool = False
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass
class FleetOptions:
    aep: int = 0
    aep_mtcap: int = 0
    mlinux: int = 0
    mlinux_mtcap: int = 0
    jumphost: bool = False
    jumphost_sudo_password: bool = True
    subnet: str = "127.77.0.0/16"
    first_address: int = 10
    dhcp_subnet: str | None = None
    state_dir: str | None = None
    seed: str | None = None
    standard_ports: bool | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


SPEC_FIELDS = {"product", "cellular", "commissioned", "ssh_enabled", "product_type"}


def parse_override(text: str) -> tuple[str, dict[str, Any]]:
    """``aep-03:never_return=1,flash_time=5`` → ("aep-03", {...})."""
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise ValueError(f"--device wants NAME:KNOB=VALUE[,KNOB=VALUE], got {text!r}")
    values: dict[str, Any] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        values[key.strip().replace("-", "_")] = value.strip() if eq else True
    return name, values


def _truthy(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


class Fleet:
    def __init__(self, options: FleetOptions):
        self.options = options
        self.devices: dict[str, Device] = {}
        self.jumphost: Jumphost | None = None
        self.jumphost_info: dict[str, Any] | None = None
        self.control_url = ""
        self._control_runner: web.AppRunner | None = None
        self._owns_state_dir = options.state_dir is None
        self.state_dir = options.state_dir or tempfile.mkdtemp(prefix="conduit-sim-")
        os.makedirs(self.state_dir, exist_ok=True)
        self.network = ipaddress.ip_network(options.subnet)
        if not self.network.is_loopback and not in_private_network_namespace():
            raise ValueError(f"--subnet {options.subnet} is not inside 127.0.0.0/8 (other addresses only inside a "
                             "network namespace made for the purpose, as the bench test does)")
        self.dhcp_network = ipaddress.ip_network(options.dhcp_subnet) if options.dhcp_subnet else None
        if self.dhcp_network is not None and not self.dhcp_network.is_loopback:
            raise ValueError(f"--dhcp-subnet {options.dhcp_subnet} is not inside 127.0.0.0/8")
        self.standard_ports = os.geteuid() == 0 if options.standard_ports is None else options.standard_ports
        self.seed = options.seed or options.subnet
        self.mlinux_password = "Ttni-" + secrets.token_urlsafe(9)
        self.started = 0.0

    # --- building ------------------------------------------------------------

    def specs(self) -> dict[str, DeviceSpec]:
        opts = self.options
        specs: dict[str, DeviceSpec] = {}
        for kind, count, mtcap in (("aep", opts.aep, opts.aep_mtcap), ("mlinux", opts.mlinux, opts.mlinux_mtcap)):
            for number in range(1, count + 1):
                name = f"{kind}-{number:02d}"
                specs[name] = DeviceSpec(kind=kind, product_type="mtcap" if number > count - mtcap else "mtcdt")
        for name, values in opts.overrides.items():
            if name not in specs:
                raise KeyError(f"--device {name}: no such device (have {', '.join(specs) or 'none'})")
            spec = specs[name]
            for key, value in values.items():
                if key == "product":
                    spec.product = str(value)
                elif key == "product_type":
                    spec.product_type = str(value)
                elif key in ("cellular", "commissioned", "ssh_enabled"):
                    setattr(spec, key, _truthy(value))
                else:
                    spec.knobs[key] = value
        return specs

    def address(self, index: int) -> str:
        return str(self.network.network_address + self.options.first_address + index)

    async def start(self) -> None:
        self.started = time.monotonic()
        specs = self.specs()
        checkout = require_parts()
        if self.options.jumphost:
            # first: a unit whose tunnel is enabled at boot calls it at once
            jumphost_address = str(self.network.network_address + 1)
            port = 22 if self.standard_ports else free_ports(jumphost_address, 1)[0]
            self.jumphost = Jumphost(os.path.join(self.state_dir, "jumphost"), jumphost_address, port,
                                     sudo_password=self.options.jumphost_sudo_password)
            self.jumphost_info = (await self.jumphost.start()).as_dict()
        rsa_needed = [name for name, spec in specs.items() if spec.kind == "mlinux"]
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=4) as pool:
            generated = await asyncio.gather(*(
                loop.run_in_executor(pool, keys.new_rsa_host_key, f"root@{specs[n].product_type}")
                for n in rsa_needed))
        host_keys = dict(zip(rsa_needed, generated))
        seen_macs: set[str] = set()
        making = []
        for index, (name, spec) in enumerate(specs.items()):
            identity = make_identity(self.seed, index)
            bump = 0
            while identity.mac in seen_macs:
                bump += 1
                identity = make_identity(self.seed, index + 100000 * bump)
            seen_macs.add(identity.mac)
            knobs = Knobs()
            knobs.update(self.options.defaults)
            knobs.update(spec.knobs)
            address = self.address(index)
            if self.dhcp_network is not None and not knobs.post_flash_address:
                knobs.post_flash_address = str(self.dhcp_network.network_address + 10 + index)
            https_port, ssh_port = (443, 22) if self.standard_ports else free_ports(address, 2)
            state_dir = os.path.join(self.state_dir, "devices", name)
            os.makedirs(state_dir, exist_ok=True)
            making.append(asyncio.to_thread(
                _make_device, name=name, index=index, spec=spec, identity=identity, address=address,
                https_port=https_port, ssh_port=ssh_port, state_dir=state_dir, knobs=knobs,
                mlinux_password=self.mlinux_password, standard_ports=self.standard_ports, checkout=checkout,
                host_key=host_keys.get(name)))
        jumphost_pid = self.jumphost.process.pid if self.jumphost and self.jumphost.process else None
        for device in await asyncio.gather(*making):
            device.jumphost_pid = jumphost_pid
            self.devices[device.name] = device
        await asyncio.gather(*(d.start() for d in self.devices.values()))
        await self._start_control()

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.devices.values()), return_exceptions=True)
        if self.jumphost is not None:
            await self.jumphost.stop()
        if self._control_runner is not None:
            await self._control_runner.cleanup()

    # --- manifest --------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        return {
            "simulator": {"pid": os.getpid(), "control_url": self.control_url, "state_dir": self.state_dir,
                          "subnet": str(self.network), "standard_ports": self.standard_ports},
            "jumphost": self.jumphost_info,
            "devices": [d.manifest_entry() for d in self.devices.values()],
        }

    def write_manifest(self, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest-")
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(self.manifest(), handle, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    # --- control API ------------------------------------------------------------

    async def _start_control(self) -> None:
        app = web.Application()
        app[FLEET_KEY] = self
        app.router.add_get("/manifest", _control_manifest)
        app.router.add_get("/devices/{name}", _control_device)
        app.router.add_get("/devices/{name}/events", _control_events)
        app.router.add_post("/devices/{name}/knobs", _control_knobs)
        app.router.add_post("/devices/{name}/clear-fault", _control_clear_fault)
        app.router.add_post("/devices/{name}/power-cycle", _control_power_cycle)
        app.router.add_post("/jumphost/restart", _control_jumphost_restart)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        address = str(self.network.network_address + 1)
        sock = open_listener(address, 0)
        await web.SockSite(runner, sock).start()
        self._control_runner = runner
        self.control_url = f"http://{address}:{sock.getsockname()[1]}"


async def _control_jumphost_restart(request: web.Request) -> web.Response:
    jumphost = _fleet(request).jumphost
    if jumphost is None:
        raise web.HTTPNotFound(text="this fleet has no jumphost")
    await jumphost.restart(float((await request.json()).get("down", 1.0)))
    return web.json_response({"ok": True})


def _make_device(*, spec: DeviceSpec, **kwargs: Any) -> Device:
    product = product_for(spec.product, spec.product_type, spec.cellular)
    aep_password = None
    if spec.kind == "aep" and spec.commissioned:
        aep_password = "Aep-" + secrets.token_urlsafe(9) + "1"
    return Device(kind=spec.kind, product=product, aep_password=aep_password,
                  aep_ssh_enabled=spec.ssh_enabled, **kwargs)


def _fleet(request: web.Request) -> Fleet:
    return request.app[FLEET_KEY]  # type: ignore[return-value]


def _named(request: web.Request) -> Device:
    device = _fleet(request).devices.get(request.match_info["name"])
    if device is None:
        raise web.HTTPNotFound(text=f"no device {request.match_info['name']}")
    return device


async def _control_manifest(request: web.Request) -> web.Response:
    return web.json_response(_fleet(request).manifest())


async def _control_device(request: web.Request) -> web.Response:
    device = _named(request)
    entry = device.manifest_entry()
    entry.pop("credentials")  # live state only: the manifest file holds the secrets tests need
    entry.update(phase=device.phase, tunnel_status=device.tunnel_status(),
                 mpower={"commissioned": device.mpower.commissioned, "saved": device.mpower.saved,
                         "running": device.mpower.running, "users": sorted(device.mpower.users)})
    return web.json_response(entry)


async def _control_events(request: web.Request) -> web.Response:
    device = _named(request)
    device.harvest_log()
    since = int(request.query.get("since", "0"))
    return web.json_response({"events": device.events[since:], "next": len(device.events)})


async def _control_knobs(request: web.Request) -> web.Response:
    device = _named(request)
    try:
        device.set_knobs(await request.json())
    except (KeyError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(vars(device.knobs))


async def _control_clear_fault(request: web.Request) -> web.Response:
    device = _named(request)
    device.knobs.never_return = False
    device.fault_cleared.set()
    return web.json_response({"ok": True})


async def _control_power_cycle(request: web.Request) -> web.Response:
    device = _named(request)
    device.power_cycle()
    return web.json_response({"ok": True})
