"""Discovery logic: bounded concurrent probing, classification, naming, and the inventory plugin populating a real
InventoryData (probes replaced by canned answers; the real path is tests/functional/test_bench.py and the
conduits_inventory integration target)."""

from __future__ import annotations

import socket

import pytest

from ansible.inventory.data import InventoryData
from ansible.template import Templar, trust_as_template

from ansible_collections.lorawan.conduit.plugins.inventory import conduits
from ansible_collections.lorawan.conduit.plugins.module_utils import _discovery
from ansible_collections.lorawan.conduit.plugins.module_utils._discovery import (
    Target,
    classify,
    discover,
    gateway_name,
    probe_tcp,
)


def test_every_endpoint_is_answered_even_with_few_sockets_at_a_time():
    listeners = []
    for _listener_number in range(3):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listeners.append(listener)
    open_ports = [listener.getsockname()[1] for listener in listeners]
    # bound but not listening: loopback refuses them at once, and holding them keeps the 20 ports distinct and ours
    # (ports closed before the probe could be handed out twice, or to someone else)
    refusers = []
    for _refuser_number in range(20):
        refuser = socket.socket()
        refuser.bind(("127.0.0.1", 0))
        refusers.append(refuser)
    closed = [refuser.getsockname()[1] for refuser in refusers]
    try:
        endpoints = [("127.0.0.1", port, None) for port in open_ports + closed]
        results = probe_tcp(endpoints, timeout=2.0, limit=2)
    finally:
        for held in listeners + refusers:
            held.close()
    assert len(results) == 23
    assert sorted(port for (_address, port, _nic), is_open in results.items() if is_open) == sorted(open_ports)


def test_states_follow_what_answered():
    target = Target("192.168.2.1")
    assert classify(target, True, False, False) == "aep_uncommissioned"
    assert classify(target, True, True, True) == "aep"
    assert classify(target, False, True, None) == "mlinux"
    assert classify(target, False, False, None) == "unreachable"
    assert gateway_name("ttn-nyc-", "00:08:00:4A:26:F1") == "ttn-nyc-00-08-00-4a-26-f1"


def test_a_lan_address_is_kept_only_for_a_multitech_mac_or_an_mpower_answer(monkeypatch):
    targets = [Target("10.0.0.%d" % n) for n in (1, 2, 3)]
    opened = {("10.0.0.1", 22, None): True, ("10.0.0.2", 22, None): True, ("10.0.0.3", 443, None): True}
    monkeypatch.setattr(_discovery, "probe_tcp", lambda endpoints, timeout, limit: opened)
    arp = {("eth0", "10.0.0.1"): "00:08:00:4a:26:f1", ("eth0", "10.0.0.2"): "52:54:00:12:34:56"}
    found = discover(targets, lambda target: False, arp=arp)
    assert [(unit["target"].address, unit["state"], unit["mac"]) for unit in found] == [
        ("10.0.0.1", "mlinux", "00:08:00:4a:26:f1"), ("10.0.0.3", "aep_uncommissioned", None)]


def test_the_plugin_fills_a_real_inventory(monkeypatch, tmp_path):
    plugin = conduits.InventoryModule()
    inventory = InventoryData()
    plugin.inventory = inventory
    # expressions from an inventory file are trusted templates; these stand for them
    options = {"compose": {"conduit_port_label": trust_as_template("conduit_bind_interface ~ '@' ~ conduit_address")},
               "groups": {}, "keyed_groups": [{"key": trust_as_template("conduit_state"), "prefix": "state"}],
               "strict": False, "leading_separator": True, "use_extra_vars": False}
    monkeypatch.setattr(plugin, "get_option", options.__getitem__)
    monkeypatch.setattr(plugin, "templar", Templar(loader=None), raising=False)
    plugin._populate({
        "ttn-nyc-00-08-00-4a-26-f1": {"conduit_state": "aep_uncommissioned", "conduit_address": "192.168.2.1",
                                      "conduit_bind_interface": "enx1", "conduit_mac": "00:08:00:4a:26:f1"},
        "ttn-nyc-00-08-00-4a-26-f2": {"conduit_state": "unreachable", "conduit_address": "10.0.0.5",
                                      "conduit_bind_interface": "", "conduit_product_type": "mtcap",
                                      "conduit_stages": {"identify": "done", "inventory": "done", "accept": "done"}},
    })
    groups = inventory.get_groups_dict()
    assert groups["new_gateways"] == ["ttn-nyc-00-08-00-4a-26-f1"]
    assert groups["provisioned"] == ["ttn-nyc-00-08-00-4a-26-f2"]
    assert groups["aep"] == ["ttn-nyc-00-08-00-4a-26-f1"]
    assert groups["mtcap"] == ["ttn-nyc-00-08-00-4a-26-f2"]
    assert groups["state_aep_uncommissioned"] == ["ttn-nyc-00-08-00-4a-26-f1"]
    host = inventory.get_host("ttn-nyc-00-08-00-4a-26-f1")
    assert host.vars["conduit_port_label"] == "enx1@192.168.2.1"


@pytest.mark.parametrize("stages, done", [
    ({"inventory": "done", "accept": "done"}, True),
    ({"inventory": "done", "accept": "failed"}, False),  # make ping's path did not reach it: the next run tries again
    ({"inventory": "done"}, False),  # the run was killed before make ping's path was tried: the next run tries
    ({"identify": "done"}, False),
    (None, False),
])
def test_a_gateway_is_provisioned_once_make_pings_path_reached_it(stages, done):
    from ansible_collections.lorawan.conduit.plugins.inventory.conduits import finished
    assert finished(stages) is done


def test_a_ledger_record_that_cannot_be_read_sets_its_own_gateway_aside(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.inventory.conduits import _ledger_records
    (tmp_path / "gw-good.yml").write_text("schema: 1\ngateway: gw-good\nstages: {accept: {status: done}}\n")
    (tmp_path / "gw-torn.yml").write_text("schema: 1\ngateway: gw-torn\nstages: {\n  identify: [\n")
    (tmp_path / "gw-future.yml").write_text("schema: 9\ngateway: gw-future\nstages: {}\n")
    records, refused = _ledger_records(str(tmp_path))
    assert list(records) == ["gw-good"]
    assert sorted(refused) == ["gw-future", "gw-torn"]
    assert f"the ledger file {tmp_path}/gw-torn.yml is not valid YAML" in refused["gw-torn"]
    assert "line 5, column 1" in refused["gw-torn"] and refused["gw-torn"].endswith("fix or remove it")
    assert "has ledger schema 9" in refused["gw-future"]


def test_a_gateway_set_aside_is_in_every_run_s_batch(monkeypatch):
    plugin = conduits.InventoryModule()
    inventory = InventoryData()
    plugin.inventory = inventory
    options = {"compose": {}, "groups": {}, "keyed_groups": [], "strict": False, "leading_separator": True,
               "use_extra_vars": False}
    monkeypatch.setattr(plugin, "get_option", options.__getitem__)
    monkeypatch.setattr(plugin, "templar", Templar(loader=None), raising=False)
    plugin._populate({"gw-torn": {"conduit_state": "refused", "conduit_refused": "gw-torn: the ledger file ..."}})
    groups = inventory.get_groups_dict()
    assert groups["refused"] == groups["new_gateways"] == groups["provisioned"] == ["gw-torn"]


def test_a_unit_that_starts_answering_late_is_waited_for_and_a_silent_one_until_the_timeout():
    """Two units on loopback ports that nothing listens on yet: the "late" one's SSH port opens during the wait's
    second pause; the other never answers. The clock is the pauses' sum, so no time passes for real."""
    ports = []
    for _number in range(4):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        ports.append(probe.getsockname()[1])
        probe.close()
    late = Target("127.0.0.1", source="listed", https_port=ports[0], ssh_port=ports[1], name="late")
    silent = Target("127.0.0.1", source="listed", https_port=ports[2], ssh_port=ports[3], name="silent")
    now, opened = [0.0], []

    def pause(seconds):
        now[0] += seconds
        if len(opened) == 0 and now[0] >= 4:
            listener = socket.socket()
            listener.bind(("127.0.0.1", ports[1]))
            listener.listen(1)
            opened.append(listener)

    try:
        states = _discovery.wait_for_units([late, silent], 30, interval=2.0, probe_timeout=0.5,
                                           check=lambda target: None, clock=lambda: now[0], sleep=pause)
    finally:
        for listener in opened:
            listener.close()
    assert states == {"late": {"state": "mlinux", "waited": 4.0}, "silent": {"state": "unreachable", "waited": 30.0}}


def test_an_https_port_open_before_mpower_answers_is_not_settled():
    unit = {"state": "aep", "https_open": True, "ssh_open": False, "commissioning": None}
    assert not _discovery.settled(unit)
    assert _discovery.settled(dict(unit, commissioning=False))
    assert _discovery.settled({"state": "mlinux", "https_open": False, "ssh_open": True, "commissioning": None})
