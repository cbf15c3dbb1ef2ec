"""The hand-over must survive ttn-multitech-cm's `make apply`: an organisation whose tunnel host or root keys would
make apply lose the gateway stops that gateway at the inventory stage, naming the file, the value and the value it
needs, and writes nothing into the organisation's inventory."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from simulator.harness import REPO, collections_root, latest_report, write_provisioning

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)


def _snapshot(folder: str) -> dict[str, bytes]:
    found = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                found[os.path.join(root, name)] = handle.read()
    return found


def test_the_templates_jumphost_placeholder_stops_the_gateway_before_the_hand_over(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "1", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-ho-",
                                      addresses=[device["address"] for device in sim.devices])
    # the operator filled in the keys but left the template's tunnel host
    conduits = os.path.join(str(tmp_path), "org", "inventory", "group_vars", "conduits.yml")
    with open(os.path.join(REPO, "inventory_template", "org", "inventory", "group_vars", "conduits.yml")) as handle:
        template_host = re.search(r"^ssh_tunnel_remote_host: .*$", handle.read(), re.MULTILINE).group(0)
    with open(conduits) as handle:
        text = re.sub(r"^ssh_tunnel_remote_host: .*$", template_host, handle.read(), flags=re.MULTILINE)
    with open(conduits, "w") as handle:
        handle.write(text)
    org_before = _snapshot(os.path.join(str(tmp_path), "org"))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_HOST_KEY_CHECKING="True")
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "lorawan.conduit.provision", "-i",
                           provisioning + "/", "-l", "new_gateways"], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert done.returncode == 2, done.stdout[-3000:]
    gateway = "ttn-ho-" + sim.devices[0]["address"].replace(".", "-")
    inventory_stage = latest_report(provisioning)["gateways"][gateway]["stages"]["inventory"]
    assert inventory_stage["status"] == "failed"
    assert (f"{conduits} sets ssh_tunnel_remote_host: 'jumphost.example.org', but the gateway's tunnel goes to "
            f"{sim.jumphost['address']}") in inventory_stage["reason"], inventory_stage
    assert _snapshot(os.path.join(str(tmp_path), "org")) == org_before
