"""The jump transport: device modules reach gateways in the field through the real sshd jumphost and their real
reverse tunnels, as provision.yml left them. One login on the jumphost for the whole batch; the jumphost's host key
is pinned (another is refused before any login); a gateway whose tunnel is down fails alone, in words that say so."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from simulator.harness import collections_root, ledger_folder, provision, write_provisioning
from tests.conftest import as_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)
PREFIX = "ttn-jt-"


def _records(provisioning: str) -> dict[str, dict]:
    folder = ledger_folder(provisioning)
    records = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".yml"):
            with open(os.path.join(folder, name)) as handle:
                records[name[:-4]] = yaml.safe_load(handle)
    return records


def _logins(sim) -> int:
    """Logins of the jumphost's admin account so far, as the jumphost's sshd logged them."""
    with open(sim.jumphost["log"], errors="replace") as handle:
        return len(re.findall(r"Accepted publickey for %s from" % re.escape(sim.jumphost["admin_user"]),
                              handle.read()))


def _identify_through_the_jumphost(sim, provisioning: str, workdir: str, host_keys: list[str]) -> dict:
    """``lorawan.conduit.gateway_facts`` over every gateway of the ledger, each reached at 127.0.0.1 and its
    tunnel port through the jumphost: the task's result."""
    jump = sim.jumphost
    password = sim.devices[0]["credentials"]["mlinux"]["password"]
    gateways = [{"name": name, "address": "127.0.0.1", "port": record["jumphost"]["tunnel_port"]}
                for name, record in _records(provisioning).items()]
    playbook, result_file = os.path.join(workdir, "identify.yml"), os.path.join(workdir, "identified.json")
    with open(playbook, "w") as handle:
        yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [{
            "name": "Identify the gateways through the jumphost",
            "lorawan.conduit.gateway_facts": {
                "gateways": gateways, "password": "{{ password }}", "ledger_dir": ledger_folder(provisioning),
                "jump_host": jump["address"], "jump_port": jump["port"], "jump_user": jump["admin_user"],
                "jump_key_file": jump["admin_key"], "jump_host_keys": host_keys},
            "register": "identified"}, {
            "name": "Keep the result", "ansible.builtin.copy": {"content": "{{ identified | to_json }}",
                                                                "dest": result_file, "mode": "0600"}}]}], handle)
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), playbook, "-e", json.dumps({"password": password}),
                           "-vvv"], capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(),
                                   ANSIBLE_LOCALHOST_WARNING="False"))
    assert password not in done.stdout + done.stderr
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(result_file) as handle:
        return json.load(handle)


def test_gateways_in_the_field_are_reached_through_one_pinned_jump_connection(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "3", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix=PREFIX,
                                      addresses=[device["address"] for device in sim.devices])
    done = provision(provisioning)
    assert done.returncode == 0, done.stdout[-3000:]
    records = _records(provisioning)
    jump = sim.jumphost
    jump_keys = sorted([jump["host_key_ed25519"], jump["host_key_rsa"]])
    # the tunnel stage recorded what a jump connection pins
    assert all(record["jumphost"]["host_keys"] == jump_keys for record in records.values()), records

    before = _logins(sim)
    result = _identify_through_the_jumphost(sim, provisioning, str(tmp_path), jump_keys)
    assert result["failed_gateways"] == [], result
    assert _logins(sim) == before + 1  # three gateways, one login on the jumphost
    by_mac = dict((device["mac"].lower(), device) for device in sim.devices)
    for name, part in result["gateways"].items():
        assert part["identity"]["mac"] in by_mac
        assert part["host_key"].split()[:2] == by_mac[part["identity"]["mac"]]["host_key"].split()[:2], name
        assert part["changed"] is False, part  # the same unit as the ledger knows, reached another way

    # one unit's tunnel down: it alone fails, saying so; the others are reached as before
    down_name, down_record = sorted(records.items())[0]
    down_device = by_mac[down_record["identity"]["mac"]]
    as_root(down_device, "/etc/init.d/ssh_tunnel stop")
    result = _identify_through_the_jumphost(sim, provisioning, str(tmp_path), jump_keys)
    assert result["failed_gateways"] == [down_name], result
    reason = result["gateways"][down_name]["msg"]
    assert reason.startswith(f"{down_name}: ") and "(stage identify)" in reason, reason
    assert f"nothing answers on port {down_record['jumphost']['tunnel_port']} of the jumphost " \
           f"{jump['address']}:{jump['port']}" in reason and "tunnel is down" in reason, reason

    # a jumphost that offers another key than the pinned one is refused before any login
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    with open(tmp_path / "other.pub") as handle:
        impostor_key = " ".join(handle.read().split()[:2])
    before = _logins(sim)
    result = _identify_through_the_jumphost(sim, provisioning, str(tmp_path), [impostor_key])
    assert sorted(result["failed_gateways"]) == sorted(records), result
    for name, part in result["gateways"].items():
        assert f"the jumphost {jump['address']}:{jump['port']}: host key changed" in part["msg"], part
        assert "reflashed" not in part["msg"], part  # nothing about the gateway changed
    assert _logins(sim) == before
    with open(os.path.join(ledger_folder(provisioning), down_name + ".yml")) as handle:
        assert yaml.safe_load(handle)["host_keys"] == down_record["host_keys"]
