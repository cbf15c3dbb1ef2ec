"""How a provisioning run works its units, through the README's command with Ansible's defaults (5 forks, no
configuration) against the simulator and the real sshd jumphost: a batch larger than the forks is worked on at
once, with progress lines while it waits; a unit another run is working on is refused with that run's name; a
run killed by SIGKILL, SIGTERM or SIGINT leaves no process behind within 5 s, and its locks do not hold the next
run back."""

from __future__ import annotations

import os
import re
import signal

import pytest

from simulator.harness import (
    latest_report,
    processes_of,
    provision,
    start_provision,
    wait_until,
    write_provisioning,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root


def _name(device: dict, prefix: str) -> str:
    return prefix + device["address"].replace(".", "-")


def test_a_batch_larger_than_the_default_forks_is_worked_on_at_once(sim_factory, tmp_path):
    wait = 6  # seconds each unit takes to restart and to flash
    sim = sim_factory("--aep", "8", "--jumphost", "--reboot-time", str(wait), "--flash-time", str(wait))
    prefix = "ttn-bt-"
    provisioning = write_provisioning(sim, str(tmp_path), prefix=prefix,
                                      addresses=[device["address"] for device in sim.devices])
    assert "ANSIBLE_FORKS" not in os.environ and "ANSIBLE_CONFIG" not in os.environ  # Ansible's defaults: 5 forks
    done = provision(provisioning, "-l", "new_gateways", "-e", "mlinux_upgrade_progress_interval=2", "-vvv")
    assert done.returncode == 0, done.stdout[-3000:]
    # each unit's passwords travel in its batch entry: none of them in the most verbose output
    for secret in ("Demo#Pass+1", sim.devices[0]["credentials"]["mlinux"]["password"], sim.jumphost["admin_password"]):
        assert secret not in done.stdout + done.stderr
    # what the batch's threads meet (a unit resetting its connection while it reboots) is said by the stage, not
    # printed by paramiko on the worker's stderr
    assert "errantly sent data directly to stderr" not in done.stdout + done.stderr
    assert sorted(latest_report(provisioning)["ready"]) == sorted(_name(device, prefix) for device in sim.devices)
    # each unit's first restart (commissioning) and its flash reboot, as the units saw them: with 5 forks worked
    # on five at a time the last three would start one whole wait after the first five
    for reason in ("restart", "flash"):
        starts = []
        for device in sim.devices:
            reboots = [event["t"] for event in sim.events(device["name"]) if event["kind"] == "reboot"]
            assert len(reboots) >= 2, (device["name"], sim.events(device["name"]))
            starts.append(reboots[0] if reason == "restart" else reboots[1])
        assert max(starts) - min(starts) < wait, (reason, sorted(starts))
    # while the flash batch waits, it says how far it is
    progress = re.findall(r"mlinux_upgrade: (\d) of 8 gateways done; (.*)", done.stdout)
    assert progress, done.stdout[-3000:]
    assert any(re.search(r"\d (uploading|flashing|rebooting into mLinux) \(longest \d+ s: ", line)
               for _count, line in progress), progress


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda how: how.name)
def test_a_unit_another_run_works_on_is_refused_and_a_killed_runs_locks_are_stale(sim_factory, tmp_path, how):
    sim = sim_factory("--aep", "2", "--jumphost", "--reboot-time", "1", "--flash-time", "2",
                      "--device", "aep-02:never_return=1")
    prefix = f"ttn-lk{how.value}-"
    provisioning = write_provisioning(sim, str(tmp_path), prefix=prefix,
                                      addresses=[device["address"] for device in sim.devices])
    quick, stuck = (_name(device, prefix) for device in sim.devices)
    # the first run flashes both; aep-02 never comes back, so the run waits for it
    first = start_provision(provisioning, "-l", "new_gateways", "-e", "mlinux_upgrade_flash_timeout=600")
    try:
        sim.wait_state("aep-01", "mlinux", timeout=120, run=first)
        second = provision(provisioning, "-l", "new_gateways")
        assert second.returncode == 2, second.stdout[-3000:]
        # the first stage that reaches the unit refuses it: the check of the flash the other run has not filed, or
        # (when that run filed it before this one read the ledger) the identify stage
        stages = latest_report(provisioning)["gateways"][quick]["stages"]
        failed = [stage for stage, outcome in stages.items() if outcome.get("status") == "failed"]
        assert failed in (["upgrade"], ["identify"]), stages
        refused = stages[failed[0]]
        assert (f"{quick} is being worked on by the ansible-playbook run of root on" in refused["reason"]
                and f"(PID {first.pid}, started " in refused["reason"]), refused
    finally:
        os.kill(first.pid, how)  # ansible-playbook itself: its workers are in sessions of their own
        first.wait(timeout=60)
    # nothing of the killed run goes on: no process of it is left within 5 s
    wait_until(lambda: not processes_of(provisioning + "/"), 5, "every process of the killed run gone")
    sim.clear_fault("aep-02")
    sim.wait_state("aep-02", "mlinux", timeout=60)
    third = provision(provisioning, "-l", "new_gateways")  # the killed run's locks are stale: taken over
    assert third.returncode == 0, third.stdout[-3000:]
    assert sorted(latest_report(provisioning)["ready"]) == sorted([quick, stuck])
