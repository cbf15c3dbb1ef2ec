"""lorawan.conduit.tunnels over a fleet the README's command provisioned, against the real sshd jumphost: every
tunnel held against the ledger and the organisation's inventory; faults made the way they happen (a tunnel down,
another key on the jumphost, an account nobody knows, an inventory entry never registered); check mode changes
nothing; tunnels_fix=true puts the ledger's key back and leaves the rest listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from simulator.harness import collections_root, ledger_folder, provision, write_provisioning
from tests.conftest import as_root
from tests.functional.test_jumphost_register import new_key, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)
PREFIX = "ttn-tn-"


def _tunnels(provisioning: str, *args: str) -> subprocess.CompletedProcess:
    """The README's command: ansible-playbook lorawan.conduit.tunnels -i provisioning/ (and ``args``)."""
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "lorawan.conduit.tunnels", "-i", provisioning + "/",
                           *args], capture_output=True, text=True, timeout=600, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(),
                                   ANSIBLE_HOST_KEY_CHECKING="True"))
    with open(os.path.join(os.path.dirname(provisioning), "runs.log"), "a") as log:
        log.write(done.stdout + done.stderr)
    return done


def _rows(done: subprocess.CompletedProcess) -> dict[str, str]:
    """``{gateway: its findings column}`` from the table the playbook showed."""
    rows = {}
    for line in done.stdout.splitlines():
        text = line.strip().rstrip(",")
        if text.startswith('"' + PREFIX):
            words = json.loads(text).split("  ")
            cells = [cell.strip() for cell in words if cell.strip()]
            rows[cells[0]] = cells[5] if len(cells) > 5 else ""
    return rows


def _listing(provisioning: str, organisation: str) -> dict[str, dict]:
    listed = run_module(provisioning + "/", "jumphost_tunnels", {"organisation": organisation})
    return dict((entry["gateway"], entry) for entry in listed["tunnels"])


def test_the_tunnels_against_the_ledger_and_the_inventory(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "3", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix=PREFIX,
                                      addresses=[device["address"] for device in sim.devices])
    assert provision(provisioning).returncode == 0
    organisation = PREFIX.rstrip("-")
    layout = {"organisation": organisation, "keepalive_port_base": sim.jumphost["keepalive_port_base"]}
    names = sorted(name[:-4] for name in os.listdir(ledger_folder(provisioning)) if name.endswith(".yml"))

    done = _tunnels(provisioning)
    assert done.returncode == 0, done.stdout[-4000:]
    assert _rows(done) == dict((name, "ok") for name in names)
    assert "3 tunnel(s): 3 as the ledger and the inventory say, 0 with findings" in done.stdout

    down, rekeyed, _well = names
    with open(os.path.join(ledger_folder(provisioning), down + ".yml")) as handle:
        mac = yaml.safe_load(handle)["identity"]["mac"]
    as_root(next(device for device in sim.devices if device["mac"] == mac), "/etc/init.d/ssh_tunnel stop")
    _path, other_key = new_key(tmp_path, "other")
    assert run_module(provisioning + "/", "jumphost_register", dict(layout, gateway=rekeyed, host_key=other_key))["changed"]
    orphan = PREFIX + "gone-by-hand"
    assert run_module(provisioning + "/", "jumphost_register", dict(layout, gateway=orphan, host_key=other_key))["changed"]
    org = os.path.join(str(tmp_path), "org", "inventory")
    never = PREFIX + "typed-in"
    with open(os.path.join(org, "hosts"), "a") as handle:
        handle.write(f"\n[test]\n{never}\n")
    with open(os.path.join(org, "host_vars", never + ".yml"), "w") as handle:
        handle.write("---\nhostname: typed-in\nssh_tunnel_remote_port: 29999\n")

    before = _listing(provisioning, organisation)
    checked = _tunnels(provisioning, "--check", "-e", "tunnels_fix=true")
    assert checked.returncode == 2, checked.stdout[-4000:]
    rows = _rows(checked)
    assert rows[down] == "not listening"
    assert rows[rekeyed] == "key differs"
    assert rows[orphan] == "orphan account"
    assert rows[never] == "not registered"
    assert rows[_well] == "ok"
    assert _listing(provisioning, organisation) == before  # check mode put no key back

    fixed = _tunnels(provisioning, "-e", "tunnels_fix=true")
    assert fixed.returncode == 2, fixed.stdout[-4000:]  # what is not safe to fix is still there, listed
    assert f"fixed: {rekeyed}" in fixed.stdout
    after = _listing(provisioning, organisation)
    assert after[rekeyed]["port"] == before[rekeyed]["port"]
    assert after[rekeyed]["key_fingerprint"] != before[rekeyed]["key_fingerprint"]
    again = _tunnels(provisioning)
    assert _rows(again)[rekeyed] == "ok" and _rows(again)[orphan] == "orphan account"
    assert sorted(_listing(provisioning, organisation)) == sorted(before)  # no account removed
