"""The network side of the simulator that is its own: listening sockets and the mPower HTTPS service.

Listening sockets are made here, on loopback addresses only (or inside a
network namespace a bench test made for the purpose). SSH is not here: units
run OpenSSH's own sshd (:mod:`simulator.unit`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import TYPE_CHECKING

from aiohttp import web

from . import keys

if TYPE_CHECKING:
    from .device import Device


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


class HttpsService:
    """An AEP unit's mPower API, up while the unit is; a reboot drops every connection."""

    def __init__(self, device: "Device"):
        self.device = device
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        from .mpower import build_app  # pylint: disable=import-outside-toplevel  # mpower reads device's types
        device = self.device
        runner = web.AppRunner(build_app(device), access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        site = web.SockSite(runner, open_listener(device.address, device.https_port),
                            ssl_context=keys.server_ssl_context(device.cert_path, device.cert_key_path))
        await site.start()
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
