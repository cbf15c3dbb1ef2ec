"""The hand-over must survive ttn-multitech-cm's `make apply` and start from files as operators keep them, through
the README's command against the simulator and the real sshd jumphost: an organisation whose tunnel host would make
apply lose the gateway stops it before anything is written; the jumphost's host key is pinned for make ping's jump
leg; the acceptance step reaches each gateway as make ping does and prints make lines only for those that answered;
YAML hosts, host_vars folders, symlinked files, vaulted values and a read-only file keep their bytes, links, owner
and mode, or are refused with nothing written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from simulator.harness import REPO, latest_report, ledger_folder, provision, write_provisioning

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)


def _snapshot(folder: str) -> dict[str, tuple[bytes, int, int, int, str | None]]:
    """Every file and link under ``folder``: bytes, mode, owner, group, link target."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [entry for entry in dirs if os.path.islink(os.path.join(root, entry))]:
            path = os.path.join(root, name)
            info = os.stat(path)
            with open(path, "rb") as handle:
                found[path] = (handle.read(), info.st_mode & 0o7777, info.st_uid, info.st_gid,
                               os.readlink(path) if os.path.islink(path) else None)
    return found


def _name(device: dict, prefix: str) -> str:
    return prefix + device["address"].replace(".", "-")


def _ledger(provisioning: str, gateway: str) -> dict:
    with open(os.path.join(ledger_folder(provisioning), gateway + ".yml")) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("key, needle", [
    ("ssh_tunnel_remote_host", "sets ssh_tunnel_remote_host: 'jumphost.example.org', but the gateway's tunnel goes to "
                               "{jumphost}"),
    ("authorized_keys", "authorized_keys holds 'ssh-ed25519 AAAA-replace-with-your-operators-keys"),
])
def test_a_template_placeholder_that_make_apply_would_act_on_stops_the_gateway_before_the_hand_over(
        sim_factory, tmp_path, key, needle):
    """The operator filled in the organisation but left one of the template's placeholders: make apply would point
    the tunnel at it, or install it as root's only key. The gateway stops at the inventory stage, the reason names
    the file, and the organisation keeps every byte."""
    sim = sim_factory("--mlinux", "1", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-ho-",
                                      addresses=[device["address"] for device in sim.devices])
    conduits = os.path.join(str(tmp_path), "org", "inventory", "group_vars", "conduits.yml")
    with open(os.path.join(REPO, "inventory_template", "org", "inventory", "group_vars", "conduits.yml")) as handle:
        template = handle.read()
    with open(conduits) as handle:
        filled = handle.read()
    pattern = r"^ssh_tunnel_remote_host: .*$" if key == "ssh_tunnel_remote_host" else r"^authorized_keys:\n(  - .*\n)+"
    placeholder = re.search(pattern, template, re.MULTILINE).group(0)
    with open(conduits, "w") as handle:
        handle.write(re.sub(pattern, lambda _match: placeholder, filled, count=1, flags=re.MULTILINE))
    org_before = _snapshot(os.path.join(str(tmp_path), "org"))
    done = provision(provisioning)
    assert done.returncode == 2, done.stdout[-3000:]
    gateway = _name(sim.devices[0], "ttn-ho-")
    inventory_stage = latest_report(provisioning)["gateways"][gateway]["stages"]["inventory"]
    assert inventory_stage["status"] == "failed"
    assert f"{conduits}" in inventory_stage["reason"], inventory_stage
    assert needle.format(jumphost=sim.jumphost["address"]) in inventory_stage["reason"], inventory_stage
    assert _snapshot(os.path.join(str(tmp_path), "org")) == org_before


def test_the_jump_leg_is_pinned_and_only_gateways_that_answer_as_make_ping_does_are_handed_over(sim_factory, tmp_path):
    """The organisation's ssh_config gets the jumphost's key (make ping in batch mode with strict checking needs
    it); a gateway its own host_vars make unreachable fails the accept stage with ansible's words, gets no make
    line and stays a new gateway; once the operator fixes the file, the next run hands it over."""
    sim = sim_factory("--mlinux", "2", "--jumphost")
    prefix = "ttn-ac-"
    provisioning = write_provisioning(sim, str(tmp_path), prefix=prefix,
                                      addresses=[device["address"] for device in sim.devices])
    org = os.path.join(str(tmp_path), "org")
    good, broken = (_name(device, prefix) for device in sim.devices)
    broken_vars = os.path.join(org, "inventory", "host_vars", broken + ".yml")
    operators = "---\n# set by hand\nansible_python_interpreter: /opt/python9/bin/python  # typo\n"
    with open(broken_vars, "w") as handle:
        handle.write(operators)
    with open(os.path.join(org, "ssh_config")) as handle:
        ssh_config_before = handle.read()

    done = provision(provisioning)
    assert done.returncode == 2, done.stdout[-3000:]
    report = latest_report(provisioning)
    assert report["ready"] == [good] and report["failed"] == [broken]
    accept = report["gateways"][broken]["stages"]["accept"]
    assert accept["status"] == "failed" and "make ping's path does not reach it" in accept["reason"], accept
    assert "/opt/python9/bin/python" in accept["reason"], accept
    assert report["gateways"][broken]["stages"]["inventory"]["status"] == "done"
    assert report["make_lines"] == [f"make TTN_ORG={org} TARGET={good} ping", f"make TTN_ORG={org} TARGET={good} apply"]
    assert f"TARGET={broken}" not in done.stdout and f"TARGET={good} ping" in done.stdout
    assert _ledger(provisioning, good)["stages"]["accept"]["status"] == "done"
    assert _ledger(provisioning, broken)["stages"]["accept"]["status"] == "failed"

    known_hosts = os.path.join(org, "known_hosts")
    with open(os.path.join(org, "ssh_config")) as handle:
        ssh_config = handle.read()
    jump = sim.jumphost
    assert ssh_config == ssh_config_before.replace(
        "    StrictHostKeyChecking yes\n", f"    StrictHostKeyChecking yes\n    UserKnownHostsFile {known_hosts}\n", 1)
    name = jump["address"] if jump["port"] == 22 else f"[{jump['address']}]:{jump['port']}"
    found = subprocess.run(["ssh-keygen", "-F", name, "-f", known_hosts],
                           capture_output=True, text=True, check=True).stdout
    assert sorted(line.split(None, 1)[1] for line in found.splitlines() if not line.startswith("#")) == \
        sorted([jump["host_key_ed25519"], jump["host_key_rsa"]])
    # the jump leg as make ping takes it, in batch mode and strict, from the organisation's files alone
    jump_leg = subprocess.run(["ssh", "-F", os.path.join(org, "ssh_config"), "-o", "BatchMode=yes", "jumphost", "true"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert jump_leg.returncode == 0, jump_leg.stderr

    with open(broken_vars) as handle:
        fixed = handle.read().replace("ansible_python_interpreter: /opt/python9/bin/python  # typo\n", "")
    with open(broken_vars, "w") as handle:
        handle.write(fixed)
    pinned = {path: open(path, "rb").read() for path in (known_hosts, os.path.join(org, "ssh_config"))}
    again = provision(provisioning)
    assert again.returncode == 0, again.stdout[-3000:]
    report = latest_report(provisioning)
    assert report["ready"] == [broken] and report["failed"] == []  # the gateway handed over before is not redone
    assert {path: open(path, "rb").read() for path in pinned} == pinned

    # A re-run of both after the operator broke one again: what an earlier run proved and this run did not change
    # stands without a connection (the ledger keeps that run's record as it was); trust_earlier=false sees it.
    with open(broken_vars, "a") as handle:
        handle.write("ansible_python_interpreter: /opt/python9/bin/python  # typo again\n")
    accepted = {name: _ledger(provisioning, name)["stages"]["accept"] for name in (good, broken)}
    kept = provision(provisioning, "-e", "provision_hosts=provisioned")
    assert kept.returncode == 0, kept.stdout[-3000:]
    report = latest_report(provisioning)
    assert report["ready"] == sorted([good, broken]) and report["failed"] == []
    for name in (good, broken):
        assert report["gateways"][name]["stages"]["accept"] == {"status": "done", "changed": False, "earlier": True}
        assert report["gateways"][name]["stages"]["inventory"]["changed"] is False
    assert "ok (earlier run)" in kept.stdout
    assert {name: _ledger(provisioning, name)["stages"]["accept"] for name in (good, broken)} == accepted
    reached = provision(provisioning, "-e", "provision_hosts=provisioned", "-e", "ttn_inventory_accept_trust_earlier=false")
    assert reached.returncode == 2, reached.stdout[-3000:]
    report = latest_report(provisioning)
    assert report["ready"] == [good] and report["failed"] == [broken]
    assert "/opt/python9/bin/python" in report["gateways"][broken]["stages"]["accept"]["reason"]


HOSTS_YAML = """\
# The organisation's gateways, kept as YAML.
conduits:
  children:
    test:
      hosts:
        ttn-old-gateway:   # on the barn
    production:
      hosts:
retired:
  hosts:
    {retired}:
"""

VAULTED = """\
ttn_api_key: !vault |
          $ANSIBLE_VAULT;1.1;AES256
          62313365396662343061393464336163383764373764613633653634306231386433626436623361
          6134333665353966363534333632666535333761666131620a663537646436643839616563336162
"""


def test_inventories_as_operators_keep_them_are_edited_in_place_or_refused_untouched(sim_factory, tmp_path):
    """Four gateways, four shapes, one run: a host_vars folder gets a file of its own; a symlinked .yaml file
    with its own owner and mode is edited through the link; a gateway already listed outside conduits and one whose
    host_vars file is read-only are refused with nothing of theirs written. The YAML hosts file and a vaulted
    group value keep every byte, and ttn-multitech-cm's view of the inventory (ansible-inventory, no vault
    password) lists the gateways that were handed over."""
    sim = sim_factory("--mlinux", "4", "--jumphost")
    prefix = "ttn-fs-"
    provisioning = write_provisioning(sim, str(tmp_path), prefix=prefix,
                                      addresses=[device["address"] for device in sim.devices])
    org = os.path.join(str(tmp_path), "org")
    inventory = os.path.join(org, "inventory")
    folder_gw, linked_gw, retired_gw, read_only_gw = (_name(device, prefix) for device in sim.devices)
    hosts_yaml = os.path.join(inventory, "hosts")  # where ttn-multitech-cm's template has it, in YAML
    with open(hosts_yaml, "w") as handle:
        handle.write(HOSTS_YAML.format(retired=retired_gw))
    conduits = os.path.join(inventory, "group_vars", "conduits.yml")
    with open(conduits, "a") as handle:
        handle.write(VAULTED)
    os.makedirs(os.path.join(inventory, "host_vars", folder_gw))
    location = os.path.join(inventory, "host_vars", folder_gw, "location.yml")
    with open(location, "w") as handle:
        handle.write("---\nlatitude: 42.44  # barn roof\nlongitude: -76.5\naltitude: 250\n")
    shared = os.path.join(str(tmp_path), "shared")
    os.makedirs(shared)
    linked_target = os.path.join(shared, linked_gw + ".yaml")
    linked_text = "---\n# the co-op's gateway\ndescription: \"Co-op #2\"\nlatitude: 42.1\nlongitude: -76.2\n"
    with open(linked_target, "w") as handle:
        handle.write(linked_text)
    os.chown(linked_target, 1234, 2345)
    os.chmod(linked_target, 0o640)
    os.symlink(os.path.relpath(linked_target, os.path.join(inventory, "host_vars")),
               os.path.join(inventory, "host_vars", linked_gw + ".yaml"))
    read_only = os.path.join(inventory, "host_vars", read_only_gw + ".yml")
    with open(read_only, "w") as handle:
        handle.write("---\ndescription: kept as it is\n")
    os.chmod(read_only, 0o444)
    before = _snapshot(org)
    before_shared = _snapshot(shared)

    done = provision(provisioning, "-l", "new_gateways", "-e", "provision_max_fail_percentage=100")
    assert done.returncode == 2, done.stdout[-3000:]
    report = latest_report(provisioning)
    assert report["ready"] == sorted([folder_gw, linked_gw]), report["failed"]
    assert report["failed"] == sorted([retired_gw, read_only_gw])
    reasons = {name: report["gateways"][name]["stages"]["inventory"].get("reason", "") for name in report["failed"]}
    assert f"{hosts_yaml} lists it in retired, outside conduits" in reasons[retired_gw], reasons
    assert f"{read_only} is read-only (mode 0444)" in reasons[read_only_gw], reasons

    after = _snapshot(org)
    assert after[hosts_yaml][0].decode().startswith(HOSTS_YAML.format(retired=retired_gw).split("    production:")[0])
    listed = yaml.safe_load(after[hosts_yaml][0])
    assert sorted(listed["conduits"]["children"]["test"]["hosts"]) == sorted(["ttn-old-gateway", folder_gw, linked_gw])
    assert retired_gw not in listed["conduits"]["children"]["test"]["hosts"]
    assert after[conduits] == before[conduits] and after[location] == before[location]
    assert after[read_only] == before[read_only]
    assert not any(retired_gw in path for path in after)
    new_file = os.path.join(inventory, "host_vars", folder_gw, "lorawan_conduit.yml")
    backups = {path for path in set(after) - set(before) if path.endswith("~")}
    assert {path.rsplit(".", 2)[0] for path in backups} == {hosts_yaml, os.path.join(org, "ssh_config")}
    assert set(after) - set(before) - backups == {new_file, os.path.join(org, "known_hosts")}
    link = os.path.join(inventory, "host_vars", linked_gw + ".yaml")
    assert os.path.islink(link) and after[link][4] == before[link][4]
    linked_after = _snapshot(shared)[linked_target]
    assert linked_after[1:4] == before_shared[linked_target][1:4] == (0o640, 1234, 2345)
    assert linked_after[0].decode().startswith(linked_text)
    with open(new_file) as handle:
        assert yaml.safe_load(handle)["hostname"] == folder_gw

    seen = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", inventory, "--list"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert seen.returncode == 0, seen.stderr
    hostvars = json.loads(seen.stdout)["_meta"]["hostvars"]
    assert hostvars[folder_gw]["latitude"] == 42.44 and hostvars[folder_gw]["hostname"] == folder_gw
    assert hostvars[linked_gw]["description"] == "Co-op #2" and hostvars[linked_gw]["ansible_host"] == "localhost"
