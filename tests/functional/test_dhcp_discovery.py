"""Discovery from the provisioning LAN's DHCP leases: the conduits inventory plugin takes the simulated units from a
dnsmasq lease file (MultiTech MACs, current leases), probes them where the lease says, lists a silent one as
unreachable, and records one sighting per MAC in the ledger, updated on each run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from simulator.harness import collections_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)


def _plain(value):
    """``value`` without ansible-inventory's ``__ansible_unsafe`` wrappers."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return dict((key, _plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _inventory(config: str) -> dict:
    done = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", config, "--list"], capture_output=True,
                          text=True, timeout=120, check=True,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root()))
    return _plain(json.loads(done.stdout))


def test_units_are_found_by_their_leases_and_each_sighting_recorded(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "2", "--aep", "1")
    expires = int(time.time()) + 3600
    silent_mac = "00:08:00:4a:99:01"
    lines = [f"{expires} {device['mac']} {device['address']} mtcdt *" for device in sim.devices]
    lines += [f"{expires} 52:54:00:12:34:56 {sim.devices[0]['address'].rsplit('.', 1)[0]}.240 laptop *",
              f"{int(time.time()) - 60} 00:08:00:4a:99:02 127.0.0.1 expired *",
              f"{expires} {silent_mac} {sim.devices[0]['address'].rsplit('.', 1)[0]}.250 * *"]
    (tmp_path / "dnsmasq.leases").write_text("\n".join(lines) + "\n")
    config = tmp_path / "lan.conduits.yml"
    config.write_text(yaml.safe_dump({"plugin": "lorawan.conduit.conduits", "dhcp_leases": ["dnsmasq.leases"],
                                      "ledger_dir": "ledger", "name_prefix": "ttn-dh-"}))
    listed = _inventory(str(config))
    hostvars = listed["_meta"]["hostvars"]
    expected = dict(("ttn-dh-" + device["mac"].replace(":", "-"), device) for device in sim.devices)
    expected_silent = "ttn-dh-" + silent_mac.replace(":", "-")
    assert sorted(hostvars) == sorted(list(expected) + [expected_silent])
    for name, device in expected.items():
        assert hostvars[name]["conduit_source"] == "dhcp"
        assert hostvars[name]["conduit_address"] == device["address"]
        assert hostvars[name]["conduit_mac"] == device["mac"]
        assert hostvars[name]["conduit_lease"]["expires"] == expires
        assert hostvars[name]["conduit_state"] == ("mlinux" if device["firmware"] == "mlinux" else "aep_uncommissioned")
    assert hostvars[expected_silent]["conduit_state"] == "unreachable"
    assert expected_silent in listed["unreachable"]["hosts"]

    sightings = tmp_path / "ledger" / "sightings"
    recorded = sorted(os.listdir(sightings))
    assert recorded == sorted(mac.replace(":", "-") + ".yml" for mac in
                              [device["mac"] for device in sim.devices] + [silent_mac])
    with open(sightings / recorded[0]) as handle:
        first = yaml.safe_load(handle)
    _inventory(str(config))
    with open(sightings / recorded[0]) as handle:
        again = yaml.safe_load(handle)
    assert again["first_seen"] == first["first_seen"] and again["mac"] == first["mac"]
    assert again["source"] == "dhcp:" + str(tmp_path / "dnsmasq.leases")
