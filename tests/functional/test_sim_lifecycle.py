"""The simulator process: manifest, loopback only, clean stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import yaml

from tests.conftest import port_open
from simulator.unit import wait_gone
from simulator.harness import REPO


def _started_by(sim) -> list[int]:
    """The processes of the simulator's units (chrooted into its state folder) and of its jumphost (in its mount
    namespace): what must not outlive it."""
    state_dir = sim.manifest["simulator"]["state_dir"]
    jumphost_namespace = os.readlink(f"/proc/{sim.jumphost['pid']}/ns/mnt")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root").startswith(state_dir + "/") or \
                    os.readlink(f"/proc/{entry}/ns/mnt") == jumphost_namespace:
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_manifest_lists_every_device_with_unique_identity(sim_factory):
    sim = sim_factory("--aep", "4", "--aep-mtcap", "1", "--mlinux", "2")
    with open(sim.manifest_path) as handle:
        manifest = yaml.safe_load(handle)
    devices = manifest["devices"]
    assert [d["name"] for d in devices] == ["aep-01", "aep-02", "aep-03", "aep-04", "mlinux-01", "mlinux-02"]
    assert [d["product_type"] for d in devices[:4]] == ["mtcdt", "mtcdt", "mtcdt", "mtcap"]
    for key in ("mac", "serial", "lora_eui", "address"):
        assert len({d[key] for d in devices}) == len(devices), key
    for device in devices:
        assert re.fullmatch(r"00:08:00(:[0-9a-f]{2}){3}", device["mac"])
        assert re.fullmatch(r"\d{8}", device["serial"])
        assert device["address"].startswith("127.")
        assert port_open(device["address"], device["https_port"] or device["ssh_port"])
    assert {d["state"] for d in devices} == {"aep_uncommissioned", "mlinux"}


def test_refuses_a_non_loopback_subnet(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "simulator", "serve", "--aep", "1", "--subnet", "192.168.2.0/24",
         "--manifest", str(tmp_path / "m.yml")], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 2
    assert "192.168.2.0/24 is not inside 127.0.0.0/8" in completed.stderr
    assert not (tmp_path / "m.yml").exists()


def test_sigterm_stops_everything(sim_factory):
    sim = sim_factory("--aep", "1", "--mlinux", "1", "--jumphost")
    addresses = [(d["address"], d["https_port"] or d["ssh_port"]) for d in sim.devices]
    jump = (sim.jumphost["address"], sim.jumphost["port"])
    processes = _started_by(sim)
    assert len(processes) >= 5, "sshd, syslogd and init of the unit, the jumphost's sshd"
    assert all(port_open(*a) for a in addresses + [jump])
    assert sim.stop() == 0
    assert not any(port_open(*a) for a in addresses + [jump])
    assert wait_gone(processes) == []


def test_sigkill_of_the_simulator_ends_every_process_it_started(sim_factory):
    sim = sim_factory("--mlinux", "2", "--jumphost")
    processes = _started_by(sim)
    assert len(processes) >= 7
    sim.process.send_signal(signal.SIGKILL)
    sim.process.wait(timeout=10)
    assert wait_gone(processes) == []


def test_sigkill_of_a_simulator_started_under_nohup_ends_its_units(sim_factory):
    # nohup starts it with SIGHUP ignored, which every child inherits; the unit's init powers off on the HUP
    # unshare sends when it dies, and a shell cannot trap a signal it was started with ignored
    ignored = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sim = sim_factory("--mlinux", "1", "--jumphost")
    finally:
        signal.signal(signal.SIGHUP, ignored)
    processes = _started_by(sim)
    assert len(processes) >= 4, "sshd, syslogd and init of the unit, the jumphost's sshd"
    sim.process.send_signal(signal.SIGKILL)
    sim.process.wait(timeout=10)
    assert wait_gone(processes) == []


def test_two_simulators_on_one_machine_hold_keepalive_ports_of_their_own(sim_factory):
    first, second = sim_factory("--jumphost"), sim_factory("--jumphost")
    assert first.jumphost["keepalive_port_base"] != second.jumphost["keepalive_port_base"]
