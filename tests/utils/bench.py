"""A provisioning bench made of network namespaces, for the bench test and the discovery benchmark.

Each bench port is a veth pair: the gateway end sits in a namespace of its own
with 192.168.2.1, a simulated factory unit listening there and the unit's own
MultiTech MAC; the host end stays in this namespace, unconfigured, for the
``provisioning_host`` role to address. Every unit answers at the same
address, as on a real bench; only a socket bound to the right NIC reaches it.
Everything is removed on exit, also when the test fails.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from simulator.harness import Simulator, start_simulator

BENCH_ADDRESS = "192.168.2.1"


@dataclass
class BenchPort:
    interface: str
    namespace: str
    sim: Simulator | None
    mac: str | None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Bench:
    """``count`` bench ports, units on the first ``units`` of them; a context manager."""

    def __init__(self, count: int, workdir: str, units: int | None = None, sim_args: tuple[str, ...] = ()):
        self.count = count
        self.units = count if units is None else units
        self.workdir = workdir
        self.sim_args = sim_args
        self.tag = "%04x" % (os.getpid() % 0x10000)
        self.ports: list[BenchPort] = []

    @property
    def glob(self) -> str:
        return f"lcb{self.tag}p*"

    def __enter__(self) -> "Bench":
        try:
            for index in range(self.count):
                self.ports.append(self._port(index))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _port(self, index: int) -> BenchPort:
        namespace = f"lcb-{self.tag}-{index}"
        host_end, unit_end = f"lcb{self.tag}p{index}", f"lcb{self.tag}g{index}"
        _ip("netns", "add", namespace)
        port = BenchPort(host_end, namespace, None, None)
        self.ports.append(port)  # removed with the rest if what follows fails
        _ip("link", "add", host_end, "type", "veth", "peer", "name", unit_end, "netns", namespace)
        _ip("-n", namespace, "addr", "add", f"{BENCH_ADDRESS}/24", "dev", unit_end)
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "link", "set", unit_end, "up")
        if index < self.units:
            port.sim = start_simulator(
                ["--aep", "1", "--subnet", "192.168.2.0/24", "--first-address", "1", "--seed",
                 f"bench-{self.tag}-{index}", *self.sim_args],
                workdir=os.path.join(self.workdir, namespace), namespace=namespace)
            port.mac = port.sim.devices[0]["mac"].lower()
            _ip("-n", namespace, "link", "set", "dev", unit_end, "address", port.mac)
        self.ports.pop()
        return port

    def close(self) -> None:
        for port in self.ports:
            if port.sim is not None:
                port.sim.stop()
            subprocess.run(["ip", "netns", "del", port.namespace], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", port.interface], capture_output=True, check=False)
        self.ports = []


def vrf_supported() -> tuple[bool, str]:
    """Whether this kernel can make VRF devices, and why not."""
    probe = f"lcbvrf{os.getpid() % 10000}"
    done = subprocess.run(["ip", "link", "add", probe, "type", "vrf", "table", "4242"], capture_output=True,
                          text=True, check=False)
    if done.returncode == 0:
        subprocess.run(["ip", "link", "del", probe], capture_output=True, check=False)
        return True, ""
    return False, done.stderr.strip()
