"""lorawan.conduit.decommission over a fleet the README's command provisioned, through the real jumphost: check mode
changes nothing anywhere; a decommissioned gateway loses its tunnel and keys on the unit, its account and port on
the jumphost, its place in the organisation's inventory (everything else byte for byte, backups kept) and its
ledger record (retired); one whose unit no longer answers still leaves the jumphost and the records, and the run
says what is left on the unit. Without -l it refuses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from simulator.harness import collections_root, ledger_folder, provision, write_provisioning
from tests.conftest import as_root
from tests.functional.test_handover import _snapshot
from tests.functional.test_tunnels import _listing

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)
PREFIX = "ttn-dc-"
TUNNEL_FILES = "ls /etc/init.d/ssh_tunnel /etc/default/ssh_tunnel /var/config/ssh_tunnel.default 2>/dev/null; true"


def _decommission(provisioning: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "lorawan.conduit.decommission", "-i",
                           provisioning + "/", "-vvv", *args], capture_output=True, text=True, timeout=600,
                          check=False, env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(),
                                                ANSIBLE_HOST_KEY_CHECKING="True"))
    with open(os.path.join(os.path.dirname(provisioning), "runs.log"), "a") as log:
        log.write(done.stdout + done.stderr)
    return done


def test_decommission_check_mode_a_unit_that_answers_and_one_that_does_not(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "3", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix=PREFIX,
                                      addresses=[device["address"] for device in sim.devices])
    assert provision(provisioning).returncode == 0
    organisation = PREFIX.rstrip("-")
    ledger = ledger_folder(provisioning)
    names = sorted(name[:-4] for name in os.listdir(ledger) if name.endswith(".yml"))
    units = {}
    for name in names:
        with open(os.path.join(ledger, name + ".yml")) as handle:
            mac = yaml.safe_load(handle)["identity"]["mac"]
        units[name] = next(device for device in sim.devices if device["mac"] == mac)
    leaving, silent, staying = names
    org = os.path.join(str(tmp_path), "org")

    refused = _decommission(provisioning)
    assert refused.returncode == 2 and "name the gateways to decommission with -l" in refused.stdout
    assert sorted(_listing(provisioning, organisation)) == names

    before = (_snapshot(org), _snapshot(ledger), _listing(provisioning, organisation),
              as_root(units[leaving], TUNNEL_FILES))
    checked = _decommission(provisioning, "-l", leaving, "--check")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert "retire its ledger record" in checked.stdout and "remove /etc/init.d/ssh_tunnel" in checked.stdout
    assert (_snapshot(org), _snapshot(ledger), _listing(provisioning, organisation),
            as_root(units[leaving], TUNNEL_FILES)) == before

    with open(os.path.join(org, "inventory", "hosts")) as handle:
        hosts_before = handle.read()
    as_root(units[silent], "/etc/init.d/ssh_tunnel stop")
    done = _decommission(provisioning, "-l", f"{leaving},{silent}")
    assert done.returncode == 0, done.stdout[-4000:]
    for device in sim.devices:
        assert device["credentials"]["mlinux"]["password"] not in done.stdout + done.stderr
    assert as_root(units[leaving], TUNNEL_FILES).strip() == ""
    assert as_root(units[leaving], "pidof autossh || echo none").strip() == "none"
    assert as_root(units[silent], TUNNEL_FILES).strip() != ""  # it did not answer: all still there
    assert "the unit did not answer" in done.stdout and "ttn-lw-cli gateways delete" in done.stdout
    assert sorted(_listing(provisioning, organisation)) == [staying]
    assert sorted(name for name in os.listdir(ledger) if name.endswith(".yml")) == [staying + ".yml"]
    retired = sorted(os.listdir(os.path.join(ledger, "retired")))
    assert [name.split(".")[0] for name in retired] == [leaving, silent]
    with open(os.path.join(org, "inventory", "hosts")) as handle:
        hosts_after = handle.read()
    assert hosts_after == "".join(line for line in hosts_before.splitlines(True)
                                  if line.strip() not in (leaving, silent))
    host_vars = os.listdir(os.path.join(org, "inventory", "host_vars"))
    assert staying + ".yml" in host_vars and leaving + ".yml" not in host_vars
    assert any(name.startswith(leaving + ".yml.") and name.endswith("~") for name in host_vars)  # the backup
