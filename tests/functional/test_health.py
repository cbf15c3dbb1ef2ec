"""lorawan.conduit.health over a fleet the README's command provisioned, through the real sshd jumphost and the
units' real tunnels, with faults injected by the simulator's knobs: a forwarder stopped, a clock off, a tunnel
down, a forwarder that dies at every start and a unit that never comes back from the reboot. Check mode changes
nothing anywhere; an unhealthy gateway fails the run (exit 2), is marked needs_attention in the ledger and the
inventory, is left alone by the next run until cleared; remediation goes a step at a time."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from simulator.harness import collections_root, ledger_folder, provision, report_folder, write_provisioning
from tests.conftest import as_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)
PREFIX = "ttn-hl-"


def _health(provisioning: str, *args: str) -> subprocess.CompletedProcess:
    """The README's command: ansible-playbook lorawan.conduit.health -i provisioning/ (and ``args``)."""
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "lorawan.conduit.health", "-i", provisioning + "/",
                           "-vvv", *args], capture_output=True, text=True, timeout=600, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(),
                                   ANSIBLE_HOST_KEY_CHECKING="True"))
    with open(os.path.join(os.path.dirname(provisioning), "runs.log"), "a") as log:
        log.write(done.stdout + done.stderr)
    return done


def _latest_health(provisioning: str) -> dict:
    folder = report_folder(provisioning)
    latest = sorted(name for name in os.listdir(folder) if name.startswith("health-") and name.endswith(".json"))[-1]
    with open(os.path.join(folder, latest)) as handle:
        return json.load(handle)


def _statuses(provisioning: str) -> dict[str, str]:
    return dict((name, entry["status"]) for name, entry in _latest_health(provisioning)["gateways"].items())


def _ledger_files(provisioning: str) -> dict[str, bytes]:
    folder = ledger_folder(provisioning)
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yml"):
            with open(os.path.join(folder, name), "rb") as handle:
                found[name] = handle.read()
    return found


def _record(provisioning: str, gateway: str) -> dict:
    with open(os.path.join(ledger_folder(provisioning), gateway + ".yml")) as handle:
        return yaml.safe_load(handle)


def _logins(sim) -> int:
    with open(sim.jumphost["log"], errors="replace") as handle:
        return len(re.findall(r"Accepted publickey for %s from" % re.escape(sim.jumphost["admin_user"]),
                              handle.read()))


def _provisioned(sim_factory, tmp_path, *device_args: str):
    sim = sim_factory("--mlinux", "4", "--jumphost", *device_args)
    provisioning = write_provisioning(sim, str(tmp_path), prefix=PREFIX,
                                      addresses=[device["address"] for device in sim.devices])
    done = provision(provisioning)
    assert done.returncode == 0, done.stdout[-3000:]
    by_name = {}
    for device in sim.devices:
        for gateway in _ledger_files(provisioning):
            if _record(provisioning, gateway[:-4])["identity"]["mac"] == device["mac"]:
                by_name[gateway[:-4]] = device
    return sim, provisioning, by_name


def _no_secret_in(done: subprocess.CompletedProcess, sim) -> None:
    for device in sim.devices:
        assert device["credentials"]["mlinux"]["password"] not in done.stdout + done.stderr


def test_a_healthy_fleet_then_faults_check_mode_marks_and_clearing(sim_factory, tmp_path):
    forwarders = [arg for number in range(1, 5) for arg in ("--device", f"mlinux-{number:02d}:forwarder=1")]
    sim, provisioning, units = _provisioned(sim_factory, tmp_path, *forwarders)
    names = sorted(units)

    before = _logins(sim)
    done = _health(provisioning)
    assert done.returncode == 0, done.stdout[-4000:]
    _no_secret_in(done, sim)
    assert _statuses(provisioning) == dict((name, "healthy") for name in names)
    assert "4 gateway(s): 4 healthy, 0 unhealthy" in done.stdout
    # the jumphost saw one jump connection for all four gateways, and the tunnel listing's login (unless Ansible's
    # control master from the provisioning run still held one)
    assert 1 <= _logins(sim) - before <= 2
    report = _latest_health(provisioning)["gateways"][names[0]]
    assert report["checks"]["forwarder"]["detail"] == "ttn-pkt-forwarder running"
    assert report["checks"]["tunnel"]["detail"] == "listening, owned by its account"

    stopped, clock_off, tunnel_down, well = names
    as_root(units[stopped], "/etc/init.d/ttn-pkt-forwarder stop")
    sim.set_knobs(units[clock_off]["name"], clock_offset=-3600)
    as_root(units[tunnel_down], "/etc/init.d/ssh_tunnel stop")

    ledger_before = _ledger_files(provisioning)
    checked = _health(provisioning, "--check", "-e", "health_remediate=true")
    assert checked.returncode == 2, checked.stdout[-4000:]
    assert _ledger_files(provisioning) == ledger_before  # nothing marked, nothing filed
    assert "would remediate forwarder" in checked.stdout
    assert as_root(units[stopped], "test -e /var/run/lora-pkt-fwd.pid || echo stopped").strip() == "stopped"

    done = _health(provisioning)
    assert done.returncode == 2, done.stdout[-4000:]
    statuses = _statuses(provisioning)
    assert statuses == {stopped: "unhealthy", clock_off: "unhealthy", tunnel_down: "unhealthy", well: "healthy"}
    reasons = dict((name, entry["reason"]) for name, entry in _latest_health(provisioning)["gateways"].items())
    assert "forwarder: ttn-pkt-forwarder is not running" in reasons[stopped]
    assert re.search(r"clock: off by -3[56]\d\d s \(more than 60 s\)", reasons[clock_off]), reasons[clock_off]
    port = _record(provisioning, tunnel_down)["jumphost"]["tunnel_port"]
    assert f"reachable: nothing answers on port {port} of the jumphost" in reasons[tunnel_down]
    for name in (stopped, clock_off, tunnel_down):
        record = _record(provisioning, name)
        assert record["needs_attention"]["reason"] in reasons[name]
        assert record["stages"]["health"]["status"] == "failed"
        assert f"fatal: [{name}]" in done.stdout
    assert "needs_attention" not in _record(provisioning, well)
    graph = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", provisioning + "/", "--graph",
                            "needs_attention"], capture_output=True, text=True, check=True,
                           env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root())).stdout
    assert sorted(re.findall(r"\|--(\S+)", graph)) == sorted([stopped, clock_off, tunnel_down]), graph

    # the next run leaves the marked ones alone: the alert went out once
    ledger_before = _ledger_files(provisioning)
    done = _health(provisioning)
    assert done.returncode == 0, done.stdout[-4000:]
    assert _statuses(provisioning) == {stopped: "needs attention", clock_off: "needs attention",
                                       tunnel_down: "needs attention", well: "healthy"}
    for name in (stopped, clock_off, tunnel_down):
        assert _ledger_files(provisioning)[name + ".yml"] == ledger_before[name + ".yml"]

    # cleared and remediated a step at a time: the forwarder restarted, the clock set
    done = _health(provisioning, "-l", f"{stopped},{clock_off}", "-e", "health_clear_attention=true",
                   "-e", "health_remediate=true")
    assert done.returncode == 0, done.stdout[-4000:]
    report = _latest_health(provisioning)["gateways"]
    assert report[stopped]["status"] == "healthy" and report[stopped]["remediation"] == ["restart the forwarder"]
    assert report[clock_off]["status"] == "healthy" and report[clock_off]["remediation"] == ["set the clock"]
    assert "needs_attention" not in _record(provisioning, stopped)
    assert "needs_attention" in _record(provisioning, tunnel_down)


def test_remediation_reboots_when_a_restart_does_not_help_and_a_unit_that_never_comes_back_is_marked(
        sim_factory, tmp_path):
    forwarders = [arg for number in range(1, 5) for arg in ("--device", f"mlinux-{number:02d}:forwarder=1")]
    sim, provisioning, units = _provisioned(sim_factory, tmp_path, *forwarders)
    crashing, never_back, _well, _other = sorted(units)
    # a forwarder that dies at every start, before the reboot and after it
    sim.set_knobs(units[crashing]["name"], forwarder_crashes=True)
    as_root(units[crashing], "/etc/init.d/ttn-pkt-forwarder restart")
    # one whose forwarder died too, and whose reboot never ends
    sim.set_knobs(units[never_back]["name"], never_return=True, forwarder_crashes=True)
    as_root(units[never_back], "/etc/init.d/ttn-pkt-forwarder restart")

    done = _health(provisioning, "-e", "health_remediate=true", "-e", "health_reboot_timeout=60")
    assert done.returncode == 2, done.stdout[-4000:]
    report = _latest_health(provisioning)["gateways"]
    assert report[crashing]["status"] == "unhealthy"
    assert report[crashing]["remediation"] == ["restart the forwarder", "reboot"]
    assert "forwarder: ttn-pkt-forwarder is not running" in report[crashing]["reason"]
    assert report[never_back]["status"] == "unhealthy"
    assert report[never_back]["remediation"] == ["restart the forwarder", "reboot",
                                                 "no answer through its tunnel within 60 s of the reboot"]
    assert "reachable: nothing answers on port" in report[never_back]["reason"]
    for name in (crashing, never_back):
        assert "needs_attention" in _record(provisioning, name)
    assert _statuses(provisioning)[_well] == "healthy"
