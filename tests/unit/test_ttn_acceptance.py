"""Which gateways the acceptance reaches again (plugins/module_utils/_ttn_acceptance.py): the ledger decides.

The reaching itself (a real ``ansible`` over a real organisation inventory) is tried in
tests/functional/test_handover.py; here ``_ping`` only records whom it was asked to reach."""

from __future__ import annotations

import os

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, file_outcome
from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_acceptance import Acceptance
from ansible_collections.lorawan.conduit.plugins.module_utils._unit_locks import Run

EARLIER = "ops@bench pid 4242 start tick 77"


@pytest.fixture
def reached(monkeypatch):
    asked: list[str] = []

    def ping(_self, _command, _inventory, _work, gateways):
        asked.extend(entry["name"] for entry in gateways)
        return {entry["name"]: {"ping": "pong"} for entry in gateways}

    monkeypatch.setattr(Acceptance, "_ping", ping)
    return asked


def _accept(tmp_path, names, trust_earlier=True):
    inventory = tmp_path / "org" / "inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    params = dict(inventory_dir=str(inventory), timeout=30, forks=8, trust_earlier=trust_earlier,
                  ledger_dir=str(tmp_path / "ledger"),
                  gateways=[{"name": name, "port": 20000 + number, "host_keys": []} for number, name in enumerate(names)])
    return Acceptance(params).run()


def test_only_a_gateway_this_run_changed_or_no_run_reached_is_reached_again(tmp_path, reached):
    ledger, now = str(tmp_path / "ledger"), Run.current().name()
    os.makedirs(ledger)
    for name in ("gw-kept", "gw-retunnelled", "gw-failed-before", "gw-this-run"):
        file_outcome(ledger, name, "identify", {"changed": False}, now)
    for name in ("gw-kept", "gw-retunnelled"):
        file_outcome(ledger, name, "accept", {"changed": False}, EARLIER)
    file_outcome(ledger, "gw-retunnelled", "tunnel", {"changed": True}, now)
    file_outcome(ledger, "gw-failed-before", "accept", {"failed": True, "msg": "no answer"}, EARLIER)
    file_outcome(ledger, "gw-this-run", "accept", {"changed": False}, now)  # a second acceptance in one run
    kept = Ledger(ledger).read("gw-kept")["stages"]["accept"]

    done = _accept(tmp_path, ["gw-kept", "gw-retunnelled", "gw-failed-before", "gw-this-run", "gw-new"])

    assert sorted(reached) == ["gw-failed-before", "gw-new", "gw-retunnelled", "gw-this-run"]
    assert done["gateways"]["gw-kept"]["earlier"] is True and done["gateways"]["gw-kept"]["reachable"] is True
    assert kept["at"] in done["gateways"]["gw-kept"]["msg"]
    assert not any(done["gateways"][name].get("earlier") for name in reached)
    assert done["reachable"] == sorted(done["gateways"]) and done["failed_gateways"] == []


def test_without_trust_every_gateway_is_reached_even_one_an_earlier_run_accepted(tmp_path, reached):
    ledger = str(tmp_path / "ledger")
    os.makedirs(ledger)
    file_outcome(ledger, "gw-kept", "accept", {"changed": False}, EARLIER)
    _accept(tmp_path, ["gw-kept"], trust_earlier=False)
    assert reached == ["gw-kept"]
