"""The fault suite: faults of the controller, the units and the jumphost during a provisioning run, each hurting
the gateways it touches and no more, and a re-run finishing the work with nothing lost.
(A unit that never comes back from its flash: tests/functional/test_provision.py; SIGTERM and SIGINT, and a run
killed while another works on the same units: test_batch_runs.py.)"""

from __future__ import annotations

import glob
import os
import signal
import subprocess

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import parse_authorized_keys
from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import HostsFile, load_mapping
from simulator.harness import (
    CannotBeReached,
    latest_report,
    ledger_folder,
    processes_of,
    provision,
    start_provision,
    wait_until,
    write_provisioning,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the jumphost needs root")  # CI runs as root

STAGES = ("commission", "upgrade", "identify", "register", "tunnel", "inventory", "accept")
PREFIX = "ttn-test-"


def _name(device: dict) -> str:
    return PREFIX + device["address"].replace(".", "-")


def _filed(provisioning: str, stage: str) -> bool:
    """Whether the ledger holds some gateway's outcome of ``stage`` (each stage files its outcomes as it ends)."""
    for path in glob.glob(os.path.join(ledger_folder(provisioning), "*.yml")):
        with open(path) as handle:
            if stage in ((yaml.safe_load(handle) or {}).get("stages") or {}):
                return True
    return False


def _events(sim, name: str, kind: str) -> list[dict]:
    return [event for event in sim.events(name) if event["kind"] == kind]


def _unit_saw(sim, kind: str, **fields: str) -> bool:
    return any(all(event.get(key) == value for key, value in fields.items())
               for device in sim.devices for event in _events(sim, device["name"], kind))


# what shows that the run is inside each stage, from the outside: a unit, the jumphost or the ledger
INSIDE = {
    "commission": lambda sim, provisioning: _unit_saw(sim, "http", method="POST"),
    "upgrade": lambda sim, provisioning: _unit_saw(sim, "sftp-open"),
    "identify": lambda sim, provisioning: _filed(provisioning, "upgrade"),
    "register": lambda sim, provisioning: sim.jumphost_run(
        f"getent group {PREFIX}gateways", check=False).returncode == 0,
    "tunnel": lambda sim, provisioning: _filed(provisioning, "register"),
    "inventory": lambda sim, provisioning: _filed(provisioning, "tunnel"),
    # the acceptance's own `ansible` ping over the organisation's inventory is running: its outcome is filed only
    # when that ends (the inventory stage's outcome came too close to the acceptance's end to kill in between)
    "accept": lambda sim, provisioning: bool(processes_of(os.path.join(os.path.dirname(provisioning), "org",
                                                                       "inventory"))),
}


def _subsequence(lines: list[str], within: list[str]) -> bool:
    rest = iter(within)
    return all(line in rest for line in lines)


def _assert_all_provisioned_and_nothing_lost(sim, provisioning: str, org: str, hosts_before: str) -> None:
    """The last run failed none, and each thing the runs wrote is whole and there once: one ledger record per unit
    (its identity, every stage it needs done), the organisation's inventory with every line the operator had, one account and one key
    line per gateway on the jumphost, listening on the port its host_vars name."""
    names = sorted(_name(device) for device in sim.devices)
    assert latest_report(provisioning)["failed"] == []
    ledger = ledger_folder(provisioning)
    assert sorted(os.listdir(ledger)) == sorted([".locks"] + [name + ".yml" for name in names])
    for device in sim.devices:
        with open(os.path.join(ledger, _name(device) + ".yml")) as handle:
            record = yaml.safe_load(handle)
        assert record["identity"]["mac"] == device["mac"], record["identity"]
        stages = STAGES if device["name"].startswith("aep") else STAGES[2:]  # a unit on mLinux is neither flashed
        assert {stage: entry["status"] for stage, entry in record["stages"].items()} == dict.fromkeys(stages, "done")
    with open(os.path.join(org, "inventory", "hosts")) as handle:
        hosts_text = handle.read()
    hosts = HostsFile("hosts", hosts_text)
    assert _subsequence(hosts_before.splitlines(), hosts_text.splitlines()), hosts_text
    assert all(hosts.groups_of(name) == ["test"] for name in names), hosts_text
    host_vars = os.path.join(org, "inventory", "host_vars")
    assert sorted(os.listdir(host_vars)) == sorted(["README"] + [name + ".yml" for name in names])
    ports = {}
    for name in names:
        with open(os.path.join(host_vars, name + ".yml")) as handle:
            ports[name] = load_mapping(name, handle.read())["ansible_port"]
    assert len(set(ports.values())) == len(names), ports
    members = sim.jumphost_run(f"getent passwd | awk -F: -v gid=$(getent group {PREFIX}gateways | cut -d: -f3) "
                               "'$4 == gid {print $1 \" \" $6}'").stdout.split("\n")
    accounts = dict(line.split() for line in members if line)
    assert sorted(accounts) == names, accounts
    for name, home in accounts.items():
        keys = [line for line in parse_authorized_keys(sim.jumphost_run(f"cat {home}/.ssh/authorized_keys").stdout)
                if line.is_key]
        assert len(keys) == 1, [line.text for line in keys]
        assert f"localhost:{ports[name]}" in keys[0].values("permitlisten"), keys[0].text


def _bench(sim_factory, tmp_path, *sim_args: str):
    """A simulated bench (two AEP units by default, one of them an MTCAP), its provisioning folder, the
    organisation's folder and its ``hosts`` as the operator left it."""
    sim = sim_factory(*(sim_args or ("--aep", "2", "--aep-mtcap", "1")), "--jumphost", "--reboot-time", "1",
                      "--flash-time", "2")
    provisioning = write_provisioning(sim, str(tmp_path), prefix=PREFIX,
                                      addresses=[device["address"] for device in sim.devices])
    org = os.path.join(str(tmp_path), "org")
    with open(os.path.join(org, "inventory", "hosts")) as handle:
        return sim, provisioning, org, handle.read()


def _wait_inside(run, stage: str, sim, provisioning: str) -> None:
    def inside() -> bool:
        if run.poll() is not None:
            raise CannotBeReached(f"the run ended (status {run.returncode}) before its {stage} stage")
        return INSIDE[stage](sim, provisioning)
    wait_until(inside, 180, f"the run inside its {stage} stage")


@pytest.mark.parametrize("stage", STAGES)
def test_killed_inside_each_stage_and_run_again(sim_factory, tmp_path, stage):
    """SIGKILL of ``ansible-playbook`` once the run is inside ``stage``; the README's command run again finishes
    every gateway, and nothing either run wrote is left half-done or twice."""
    sim, provisioning, org, hosts_before = _bench(sim_factory, tmp_path)
    run = start_provision(provisioning)
    try:
        _wait_inside(run, stage, sim, provisioning)
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    wait_until(lambda: not processes_of(provisioning + "/"), 5, "every process of the killed run gone")
    again = provision(provisioning, "-l", "new_gateways")
    assert again.returncode == 0, again.stdout[-3000:]
    _assert_all_provisioned_and_nothing_lost(sim, provisioning, org, hosts_before)


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


def test_units_lost_mid_upload_hurt_themselves_only(sim_factory, tmp_path):
    """Three units over a slow link (a 4 MiB image takes 4 s). aep-01's link is cut after 1 MiB: its upload goes
    on from what arrived, in the same run. aep-02 loses power mid-upload and is back a second later, its /tmp
    gone: its upload starts again and the run flashes it. aep-03 stays off longer than an upload waits for its
    unit (30 s): that gateway fails, saying so, and nothing else does; once it is back, the README's command
    finishes it."""
    slow = "upload_rate=1048576"
    sim, provisioning, org, hosts_before = _bench(
        sim_factory, tmp_path, "--aep", "3", "--device", f"aep-01:{slow},drop_upload_after=1048576",
        "--device", f"aep-02:{slow}", "--device", f"aep-03:{slow},reboot_time=40")
    names = {device["name"]: _name(device) for device in sim.devices}
    run = start_provision(provisioning)
    try:
        for unit in ("aep-02", "aep-03"):
            wait_until(lambda unit=unit: _events(sim, unit, "sftp-open"), 120, f"{unit}'s upload started")
            sim.power_cycle(unit)
        run.wait(timeout=300)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 2
    report = latest_report(provisioning)
    assert report["failed"] == [names["aep-03"]], report["summary"]
    assert sorted(report["ready"]) == sorted([names["aep-01"], names["aep-02"]])
    lost = report["gateways"][names["aep-03"]]["stages"]["upgrade"]
    assert lost["status"] == "failed" and lost["reason"] == (
        f"{names['aep-03']}: upload: upload of ttni-base-image-mtcdt-upgrade.bin broke off, and the unit did not "
        "answer again within 30 s (SSH not reachable ([Errno 111] Connection refused)); nothing was flashed: run "
        "again once the unit answers"), lost
    assert not _events(sim, "aep-03", "firmware-upgrade")  # nothing flashed from a part of an image
    assert [event["detail"] for event in _events(sim, "aep-01", "fault")] == ["connection dropped mid-upload"]
    kinds = [(event["kind"], event.get("reason")) for event in sim.events("aep-02")]
    cut = kinds.index(("reboot", "power-cycle"))  # the upload began before the power went, and again after
    assert ("sftp-open", None) in kinds[:cut] and ("sftp-open", None) in kinds[cut:], kinds
    for unit in ("aep-01", "aep-02"):  # one flash each, of the whole image: the sha256 check passed on the unit
        assert len(_events(sim, unit, "flashed")) == 1, sim.events(unit)
    sim.wait_state("aep-03", "aep", timeout=60)
    again = provision(provisioning, "-l", "new_gateways")
    assert again.returncode == 0, again.stdout[-3000:]
    _assert_all_provisioned_and_nothing_lost(sim, provisioning, org, hosts_before)


@pytest.mark.parametrize("stage", ["register", "tunnel", "accept"])
def test_a_jumphost_restart_mid_batch(sim_factory, tmp_path, stage):
    """The jumphost restarts (every session ends, nothing answers for 3 s) while the run is inside ``stage``.
    Each gateway the restart hurt fails with words that name the jumphost; the re-run over every gateway finishes
    them all, and the gateways the first run finished keep their ports."""
    sim, provisioning, org, hosts_before = _bench(sim_factory, tmp_path)
    run = start_provision(provisioning)
    try:
        _wait_inside(run, stage, sim, provisioning)
        sim.restart_jumphost(down=3)
        run.wait(timeout=300)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
    with open(run.log_path, errors="replace") as handle:
        first_output = handle.read()
    report = latest_report(provisioning)
    assert run.returncode == (2 if report["failed"] else 0), first_output[-3000:]
    recap = {line.split()[0]: line for line in first_output.splitlines() if line.startswith(PREFIX)}
    for name, line in recap.items():  # the recap counts what the report says: failed, never unreachable
        assert "unreachable=0" in line and ("failed=1" if name in report["failed"] else "failed=0") in line, line
    for name in report["failed"]:
        failed = {name: entry for name, entry in report["gateways"][name]["stages"].items()
                  if entry.get("status") == "failed"}
        assert len(failed) == 1, failed
        (where, entry), = failed.items()
        assert "jumphost" in entry["reason"] and not entry["reason"].endswith("..."), entry  # all of ssh's words
        with open(os.path.join(ledger_folder(provisioning), name + ".yml")) as handle:
            assert yaml.safe_load(handle)["stages"][where]["reason"] == entry["reason"]
    again = provision(provisioning, "-e", "provision_hosts=new_gateways:provisioned")
    assert again.returncode == 0, again.stdout[-3000:]
    _assert_all_provisioned_and_nothing_lost(sim, provisioning, org, hosts_before)


def test_an_account_whose_creation_was_cut_off_is_repaired_by_the_next_run(sim_factory, tmp_path):
    """What a jumphost restart inside useradd leaves (seen in this suite): the account exists, its home is still
    root's with mode 000, and the real sshd cannot open the gateway's key file, so its tunnel never comes back. The
    next run hands the home over, and the gateway answers make ping's path again."""
    sim, provisioning, org, hosts_before = _bench(sim_factory, tmp_path, "--mlinux", "2")
    first = provision(provisioning, "-l", "new_gateways")
    assert first.returncode == 0, first.stdout[-3000:]
    broken = _name(sim.devices[0])
    sim.jumphost_run(f"chown root:root /home/{broken} && chmod 000 /home/{broken}")
    sim.restart_jumphost(down=1)  # every tunnel dials in again
    refused = f"Could not open user '{broken}' authorized keys '/home/{broken}/.ssh/authorized_keys': Permission denied"
    wait_until(lambda: refused in sim.jumphost_run(f"cat {sim.jumphost['log']}").stdout, 60, "the key file refused")
    again = provision(provisioning, "-e", "provision_hosts=provisioned")
    assert again.returncode == 0, again.stdout[-3000:]
    register = latest_report(provisioning)["gateways"][broken]["stages"]["register"]
    assert register["status"] == "done" and register["changed"], register
    assert sim.jumphost_run(f"stat -c '%U %a' /home/{broken}").stdout.split() == [broken, "700"]
    _assert_all_provisioned_and_nothing_lost(sim, provisioning, org, hosts_before)
