"""The fault suite: faults of the controller, the units and the jumphost during a provisioning run, each hurting
the gateways it touches and no more, and a re-run finishing the work with nothing lost.
(Killed runs and units that vanish mid-flash: tests/functional/test_provision.py and test_batch_runs.py.)"""

from __future__ import annotations

import os
import subprocess

import yaml

from simulator.harness import latest_report, ledger_folder, provision, write_provisioning


def _records(folder):
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yml"):
            with open(os.path.join(folder, name)) as handle:
                found[name] = handle.read()
    return found


def test_a_full_disk_under_the_ledger_fails_the_run_in_words_and_loses_nothing(sim_factory, tmp_path):
    """The ledger on a small tmpfs: provisioned once, then the disk fills up. The re-run cannot file its outcomes:
    every gateway fails saying so, exit status 2, and every record stays as it was, whole. Space freed, the next
    run goes through."""
    sim = sim_factory("--mlinux", "2", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-test-",
                                      addresses=[device["address"] for device in sim.devices])
    ledger = ledger_folder(provisioning)
    os.makedirs(ledger)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "lorawan-test-ledger", ledger], check=True)
    try:
        first = provision(provisioning, "-l", "new_gateways")
        assert first.returncode == 0, first.stdout[-3000:]
        before = _records(ledger)
        assert len(before) == 2
        filler = os.path.join(ledger, ".filler")
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        full = provision(provisioning, "-e", "provision_hosts=provisioned")
        assert full.returncode == 2, full.stdout[-3000:]
        report = latest_report(provisioning)
        assert sorted(report["failed"]) == sorted(name[:-4] for name in before), report["summary"]
        for name in report["failed"]:
            reasons = [stage.get("reason") or "" for stage in report["gateways"][name]["stages"].values()]
            assert any("could not write its ledger file" in reason and "No space left on device" in reason
                       and "it stays as it was" in reason for reason in reasons), reasons
        assert _records(ledger) == before
        assert sorted(os.listdir(ledger)) == sorted(list(before) + [".filler", ".locks"])
        os.unlink(filler)
        again = provision(provisioning, "-e", "provision_hosts=provisioned")
        assert again.returncode == 0, again.stdout[-3000:]
        assert sorted(latest_report(provisioning)["ready"]) == sorted(name[:-4] for name in before)
        for text in _records(ledger).values():
            assert yaml.safe_load(text)["stages"]["accept"]["status"] == "done"
    finally:
        subprocess.run(["umount", "-l", ledger], check=False)
