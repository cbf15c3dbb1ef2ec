"""``ansible-playbook lorawan.conduit.provision`` end to end on a simulated fleet and the real sshd jumphost."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import HostsFile, load_mapping
from simulator.harness import (
    collections_root,
    latest_report,
    ledger_folder,
    provision,
    report_folder,
    write_provisioning,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the jumphost needs root")  # CI runs as root


def _failures(done: subprocess.CompletedProcess) -> str:
    return "\n".join(line for line in (done.stdout + done.stderr).splitlines()
                     if line.startswith(("fatal", "[ERROR]", "failed:")))[-3000:]


def _deprecations(done: subprocess.CompletedProcess) -> list[str]:
    """Each deprecation warning the run printed."""
    return [line for line in (done.stdout + done.stderr).splitlines() if "[DEPRECATION WARNING]" in line]


def _recap(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines() if line.startswith("ttn-")}


def _read_yaml(path: str) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def _name(device: dict) -> str:
    return "ttn-test-" + device["address"].replace(".", "-")


def _through_jumphost(sim, workdir: str, port: int, host_key: str, command: str) -> subprocess.CompletedProcess:
    jump = sim.jumphost
    known = os.path.join(workdir, f"known_{port}")
    with open(jump["known_hosts"]) as handle, open(known, "w") as out:
        out.write(handle.read() + f"[localhost]:{port} {' '.join(host_key.split()[:2])}\n")
    config = os.path.join(workdir, f"ssh_config_{port}")
    with open(config, "w") as out:
        out.write(f"Host jumphost\n  HostName {jump['address']}\n  Port {jump['port']}\n  User {jump['admin_user']}\n"
                  f"Host *\n  IdentityFile {jump['admin_key']}\n  UserKnownHostsFile {known}\n"
                  "  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  BatchMode yes\n")
    return subprocess.run(["ssh", "-F", config, "-J", "jumphost", "-p", str(port), "root@localhost", command],
                          capture_output=True, text=True, timeout=60, check=False)


def test_eight_factory_units_one_never_returns_from_the_flash(sim_factory, tmp_path):
    sim = sim_factory("--aep", "8", "--aep-mtcap", "3", "--jumphost", "--reboot-time", "1", "--flash-time", "2",
                      "--device", "aep-08:never_return=1")
    workdir = str(tmp_path)
    provisioning = write_provisioning(sim, workdir, prefix="ttn-test-",
                                      addresses=[device["address"] for device in sim.devices])
    hosts_before = open(os.path.join(workdir, "org", "inventory", "hosts")).read()

    checked = provision(provisioning, "-l", "new_gateways", "--check")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "would change" in checked.stdout
    for device in sim.devices:  # --check sent nothing that changes state to any unit
        assert [e for e in sim.events(device["name"]) if e["kind"] == "http" and e.get("method") != "GET"] == []
    assert not os.path.exists(ledger_folder(provisioning))
    assert not os.path.exists(report_folder(provisioning))
    assert open(os.path.join(workdir, "org", "inventory", "hosts")).read() == hosts_before
    assert os.listdir(os.path.join(workdir, "org", "inventory", "host_vars")) == ["README"]
    assert "ttn-test-gateways" not in sim.jumphost_run("getent group || true").stdout

    first = provision(provisioning, "-l", "new_gateways", "-e", "mlinux_upgrade_flash_timeout=15")
    # the stuck unit ends as failed after the report: the recap and the exit status say what the report says
    assert first.returncode == 2, _failures(first)
    stuck = _name(sim.device("aep-08"))
    assert [name for name, line in _recap(first.stdout).items() if "failed=0" not in line] == [stuck], first.stdout[-6000:]
    # no strategy plugin, nothing deprecated
    assert _deprecations(first) == [], first.stderr[-3000:]
    report = latest_report(provisioning)
    assert report["failed"] == [stuck]
    assert sorted(report["ready"]) == sorted(_name(d) for d in sim.devices if d["name"] != "aep-08")
    reason = report["gateways"][stuck]["stages"]["upgrade"]["reason"]
    assert report["gateways"][stuck]["stages"]["upgrade"]["status"] == "failed"
    assert "flash did not complete within 15 s" in reason, reason
    # every stage filed each gateway's outcome in the ledger, failures with their words, under this run's name
    with open(os.path.join(ledger_folder(provisioning), stuck + ".yml")) as handle:
        filed = yaml.safe_load(handle)["stages"]
    assert sorted(filed) == ["commission", "upgrade"]
    assert filed["upgrade"]["status"] == "failed" and filed["upgrade"]["reason"] == reason
    assert filed["commission"]["run"] == filed["upgrade"]["run"] == report["run"]
    assert filed["upgrade"]["seconds"] >= 15
    for name in report["ready"]:
        with open(os.path.join(ledger_folder(provisioning), name + ".yml")) as handle:
            filed = yaml.safe_load(handle)["stages"]
        assert {stage: entry["status"] for stage, entry in filed.items()} == dict.fromkeys(
            ["commission", "upgrade", "identify", "register", "tunnel", "inventory", "accept"], "done"), name
        assert {entry["run"] for entry in filed.values()} == {report["run"]}
        assert all(isinstance(entry["seconds"], float) for entry in filed.values())
    hosts = HostsFile("hosts", open(os.path.join(workdir, "org", "inventory", "hosts")).read())
    assert sorted(n for n in report["ready"] if hosts.groups_of(n) == ["test"]) == sorted(report["ready"])
    assert hosts.groups_of(stuck) == []
    for name in report["ready"]:  # each gateway, through its own tunnel, is the unit it was discovered as
        device = next(d for d in sim.devices if _name(d) == name)
        with open(os.path.join(workdir, "org", "inventory", "host_vars", name + ".yml")) as handle:
            host_vars = load_mapping("hv", handle.read())
        with open(os.path.join(ledger_folder(provisioning), name + ".yml")) as handle:
            record = yaml.safe_load(handle)
        reached = _through_jumphost(sim, workdir, host_vars["ansible_port"], record["host_keys"]["rsa"],
                                    "mts-io-sysfs show mac-eth")
        assert reached.returncode == 0, reached.stderr
        assert reached.stdout.strip().lower() == device["mac"]
        # the unit's tunnel trusts this jumphost only: its keys are pinned in root's persistent known_hosts
        pinned = _through_jumphost(sim, workdir, host_vars["ansible_port"], record["host_keys"]["rsa"],
                                   "cat /var/config/home/root/.ssh/known_hosts")
        with open(sim.jumphost["known_hosts"]) as handle:
            assert sorted(pinned.stdout.splitlines()) == sorted(handle.read().splitlines()), pinned.stdout

    sim.clear_fault("aep-08")
    sim.wait_state("aep-08", "mlinux", timeout=60)
    second = provision(provisioning, "-e", "provision_hosts=new_gateways:provisioned")
    assert second.returncode == 0, second.stdout[-3000:]
    assert _deprecations(second) == [], second.stderr[-3000:]
    recap = _recap(second.stdout)
    assert sorted(latest_report(provisioning)["ready"]) == sorted(_name(d) for d in sim.devices)
    assert "changed=0" not in recap[stuck]
    assert all("changed=0" in line for name, line in recap.items() if name != stuck), recap


def test_a_bad_batch_stops_and_says_why(sim_factory, tmp_path):
    sim = sim_factory("--aep", "3", "--jumphost", "--reboot-time", "1", "--flash-time", "1",
                      "--device", "aep-01:never_return=1", "--device", "aep-02:never_return=1")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-test-",
                                      addresses=[device["address"] for device in sim.devices])
    done = provision(provisioning, "-l", "new_gateways", "-e", "mlinux_upgrade_flash_timeout=5",
                     "-e", "provision_max_fail_percentage=50")
    assert done.returncode == 2, _failures(done)
    failed = sorted(name for name, line in _recap(done.stdout).items() if "failed=0" not in line)
    assert failed == sorted(_name(sim.device(unit)) for unit in ("aep-01", "aep-02"))
    report = latest_report(provisioning)
    assert report["stopped"].split() == ("batch stopped after the upgrade stage: 2 of 3 gateways failed "
                                         "(more than 50%)").split()
    healthy = report["gateways"][_name(sim.device("aep-03"))]["stages"]
    assert healthy["upgrade"]["status"] == "done" and "identify" not in healthy  # flashed, then held back
    assert report["ready"] == []


def test_a_jumphost_that_cannot_be_reached_fails_every_gateway_with_its_words(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "3", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-test-",
                                      addresses=[device["address"] for device in sim.devices])
    with socket.socket() as closed:  # a port nothing listens on once this closes: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    jumphost_file = os.path.join(provisioning, "jumphost.yml")
    jumphosts = _read_yaml(jumphost_file)
    for host in jumphosts["jumphosts"]["hosts"].values():
        host.update(ansible_host="127.0.0.1", ansible_port=port)
    with open(jumphost_file, "w") as handle:
        yaml.safe_dump(jumphosts, handle)
    done = provision(provisioning, "-l", "new_gateways")
    assert done.returncode == 2, done.stdout[-3000:]
    names = sorted(_name(device) for device in sim.devices)
    recap = _recap(done.stdout)
    # every gateway failed at the registration, none is counted unreachable for the jumphost's sake
    assert sorted(name for name, line in recap.items() if "failed=1" in line and "unreachable=0" in line) == names
    report = latest_report(provisioning)
    assert sorted(report["failed"]) == names
    for name in names:
        register = report["gateways"][name]["stages"]["register"]
        assert register["status"] == "failed"
        assert register["reason"].startswith(f"{name}: the jumphost (jumphost) did not register it: could not run "
                                             "lorawan.conduit.jumphost_register there: "), register
        assert f"port {port}: Connection refused" in register["reason"], register
        assert f"fatal: [{name}]: FAILED! => {{\"changed\": false, \"msg\": \"{register['reason']}\"" in done.stdout
        filed = _read_yaml(os.path.join(ledger_folder(provisioning), name + ".yml"))["stages"]
        assert filed["identify"]["status"] == "done" and filed["register"]["status"] == "failed"
        assert filed["register"]["reason"] == register["reason"]
        assert filed["register"]["run"] == report["run"] and "tunnel" not in filed


def test_a_broken_ledger_record_and_an_unreachable_gateway_fail_alone_and_the_exit_status_says_so(sim_factory,
                                                                                                  tmp_path):
    sim = sim_factory("--mlinux", "3", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-test-",
                                      addresses=[device["address"] for device in sim.devices])
    first = provision(provisioning, "-l", "new_gateways")
    assert first.returncode == 0, _failures(first)
    names = sorted(_name(device) for device in sim.devices)
    torn, good = names[0], names[1:]
    ledger = ledger_folder(provisioning)
    with open(os.path.join(ledger, torn + ".yml")) as handle:
        broken = handle.read().replace("stages:", "stages: [", 1)  # a hand edit that left it no YAML
    with open(os.path.join(ledger, torn + ".yml"), "w") as handle:
        handle.write(broken)
    # a provisioned gateway nothing answers for any more, where it last answered
    ghost = "ttn-test-ghost"
    record = _read_yaml(os.path.join(ledger, good[0] + ".yml"))
    record.update(gateway=ghost, identity=dict(record["identity"], mac="00:08:00:ff:ff:fe"),
                  reach=dict(record["reach"], address=sim.devices[0]["address"].rsplit(".", 1)[0] + ".250"))
    with open(os.path.join(ledger, ghost + ".yml"), "w") as handle:
        yaml.safe_dump(record, handle)

    again = provision(provisioning, "-e", "provision_hosts=provisioned")
    assert again.returncode == 2, again.stdout[-3000:]
    recap = _recap(again.stdout)
    assert sorted(name for name, line in recap.items() if "failed=1" in line) == sorted([ghost, torn])
    assert all("failed=0" in recap[name] and "changed=0" in recap[name] for name in good), recap
    report = latest_report(provisioning)
    assert report["summary"].startswith("4 gateway(s): 2 ready for make apply, 2 failed"), report["summary"]
    assert sorted(report["ready"]) == good and sorted(report["failed"]) == sorted([ghost, torn])
    table = _report_rows(provisioning)
    assert f"refused: {torn}: the ledger file {ledger}/{torn}.yml is not valid YAML" in table[torn], table[torn]
    assert "line " in table[torn] and "fix or remove it" in table[torn]
    assert "unreachable: the unit answered neither HTTPS nor SSH" in table[ghost]
    with open(os.path.join(ledger, torn + ".yml")) as handle:  # the operator's file, as they left it
        assert handle.read() == broken


def _report_rows(provisioning: str) -> dict[str, str]:
    """Each gateway's row of the last run's Markdown report, by name."""
    reports = report_folder(provisioning)
    with open(os.path.join(reports, sorted(name for name in os.listdir(reports) if name.endswith(".md"))[-1])) as md:
        return {line.split("|")[1].strip(): line for line in md if line.startswith("| ttn-")}


def test_a_unit_still_booting_when_discovery_looks_is_waited_for(sim_factory, tmp_path):
    """Discovery finds one of two units silent (it boots for 20 s more): the run waits for it, up to
    provision_boot_timeout, and takes it through every stage like the other."""
    sim = sim_factory("--mlinux", "2", "--jumphost", "--device", "mlinux-02:startup_delay=20")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-test-",
                                      addresses=[device["address"] for device in sim.devices])
    late = _name(sim.device("mlinux-02"))
    done = provision(provisioning, "-l", "new_gateways", "-e", "provision_boot_timeout=90")
    assert done.returncode == 0, _failures(done)
    assert "Wait for the units that did not answer discovery" in done.stdout
    report = latest_report(provisioning)
    assert sorted(report["ready"]) == sorted(_name(device) for device in sim.devices)
    filed = _read_yaml(os.path.join(ledger_folder(provisioning), late + ".yml"))["stages"]
    assert filed["accept"]["status"] == "done"


def test_the_documented_vault_layout_works_and_no_state_file_is_read_as_inventory(sim_factory, tmp_path):
    """The README's layout as written: the passwords in an encrypted group_vars/all/vault.yml, the ledger and the
    reports beside the inventory folder. A second run, with both full, reads no file of theirs as inventory: no
    stray group, no warning about one, and the vault's password nowhere in the output."""
    sim = sim_factory("--mlinux", "1", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-test-",
                                      addresses=[device["address"] for device in sim.devices])
    vault = os.path.join(provisioning, "group_vars", "all", "vault.yml")
    secret = tmp_path / "vault-pass"
    secret.write_text("Vault#Pass-" + os.urandom(6).hex() + "\n")
    encrypt = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-vault"), "encrypt",
                              "--vault-password-file", str(secret), vault], capture_output=True, text=True,
                             check=False)
    assert encrypt.returncode == 0, encrypt.stderr
    with open(vault) as handle:
        assert handle.read().startswith("$ANSIBLE_VAULT;")
    for attempt in ("first", "again"):
        done = provision(provisioning, "-l", "new_gateways:provisioned", "--vault-password-file", str(secret))
        assert done.returncode == 0, (attempt, _failures(done))
        assert "valid group definition" not in done.stdout + done.stderr, attempt
        assert "Unable to parse" not in done.stdout + done.stderr, attempt
    assert sorted(latest_report(provisioning)["ready"]) == [_name(sim.devices[0])]
    assert os.listdir(ledger_folder(provisioning)) and os.listdir(report_folder(provisioning))
    graph = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", provisioning,
                            "--graph", "--vault-password-file", str(secret)], capture_output=True, text=True,
                           check=False, env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root()))
    groups = sorted(line.strip(" |-@:") for line in graph.stdout.splitlines() if "@" in line)
    assert groups == sorted(["all", "aep", "jumphosts", "mlinux", "needs_attention", "new_gateways", "provisioned",
                             "refused", "unreachable", "ungrouped"]
                            + ([sim.devices[0].get("product_type")] if sim.devices[0].get("product_type") else [])), groups
    assert "valid group definition" not in graph.stderr, graph.stderr
    for password in (secret.read_text().strip(), sim.devices[0]["credentials"]["mlinux"]["password"]):
        with open(os.path.join(os.path.dirname(provisioning), "runs.log")) as handle:
            assert password not in handle.read()
