"""The run report's reading of stage results (plugins/module_utils/_report.py)."""

from __future__ import annotations

import json

from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, file_outcome
from ansible_collections.lorawan.conduit.plugins.module_utils._report import Report

RUN = "ops@bench pid 4242 start tick 77"


def _report(results, tmp_path=None, check_mode=False, **params):
    """The report of ``{gateway: {stage: result}}``, given as the play gives it: each stage's batch results."""
    by_stage: dict = {}
    for name, stages in results.items():
        for stage, result in stages.items():
            by_stage.setdefault(stage, {})[name] = result
    return Report(dict(results=by_stage, states=dict.fromkeys(results), report_dir=str(tmp_path) if tmp_path else None,
                       org_dir="/org", **params), check_mode=check_mode, run=RUN).run()


def test_each_stage_result_becomes_its_outcome(tmp_path):
    done = _report({
        "gw-01": {"commission": {"changed": True, "seconds": 41.2}, "upgrade": {"changed": False},
                  "identify": {"failed": True, "msg": "gw-01: no answer on SSH", "seconds": 3.0},
                  "register": {"skipped": True, "changed": False}},
        "gw-02": {stage: {"changed": False} for stage in ("identify", "register", "tunnel", "inventory", "accept")},
    }, tmp_path)
    with open(done["json"]) as handle:
        written = json.load(handle)
    assert written["gateways"]["gw-01"]["stages"] == {
        "commission": {"status": "done", "changed": True, "seconds": 41.2},
        "upgrade": {"status": "done", "changed": False},
        "identify": {"status": "failed", "changed": False, "reason": "gw-01: no answer on SSH", "seconds": 3.0}}
    assert done["ready"] == ["gw-02"] and done["failed_gateways"] == ["gw-01"]
    assert done["make_lines"] == ["make TTN_ORG=/org TARGET=gw-02 ping", "make TTN_ORG=/org TARGET=gw-02 apply"]
    assert "identify: gw-01: no answer on SSH" in done["table"][1]


def test_in_check_mode_a_change_is_planned_and_nothing_is_written(tmp_path):
    done = _report({"gw-01": {"commission": {"changed": True}}}, tmp_path, check_mode=True)
    assert done["json"] is None and not list(tmp_path.iterdir())
    assert "would change" in done["table"][1]


def test_the_batch_stopped_after_the_stage_that_failed_too_many():
    results = {"gw-01": {"commission": {}, "upgrade": {"failed": True, "msg": "x"}},
               "gw-02": {"upgrade": {"failed": True, "msg": "y"}},
               "gw-03": {"upgrade": {"changed": True}}}
    assert _report(results, max_fail_percentage=50)["summary"].endswith(
        "; batch stopped after the upgrade stage: 2 of 3 gateways failed (more than 50%)")
    # as many failures, but the third gateway went on: nothing was held back
    results["gw-03"]["identify"] = {"changed": True}
    assert "stopped" not in _report(results, max_fail_percentage=50)["summary"]
    # within the share allowed
    assert "stopped" not in _report(results, max_fail_percentage=70)["summary"]


def test_what_this_run_filed_in_the_ledger_is_the_outcome_and_the_results_stand_in_for_the_rest(tmp_path):
    ledger = str(tmp_path / "ledger")
    file_outcome(ledger, "gw-01", "commission", {"changed": True, "seconds": 40.0}, RUN)
    file_outcome(ledger, "gw-01", "upgrade", {"failed": True, "msg": "gw-01: no mLinux after 900 s",
                                              "seconds": 900.0}, RUN)
    file_outcome(ledger, "gw-02", "identify", {"failed": True, "msg": "an earlier run's failure"}, "another run")
    with open(Ledger(ledger).path("gw-03"), "w") as handle:
        handle.write("schema: 1\ngateway: gw-03\nstages: {\n")  # unreadable: the results stand in
    results = {"gw-01": {"commission": {"changed": True}, "upgrade": {"changed": True}},  # the ledger says more
               "gw-02": {"identify": {"changed": False, "seconds": 2.0}},
               "gw-03": {"identify": {"changed": False}}}
    done = _report(results, tmp_path / "reports", ledger_dir=ledger)
    with open(done["json"]) as handle:
        written = json.load(handle)
    assert written["run"] == RUN
    assert written["gateways"]["gw-01"]["stages"] == {
        "commission": {"status": "done", "changed": True, "seconds": 40.0},
        "upgrade": {"status": "failed", "changed": False, "seconds": 900.0, "reason": "gw-01: no mLinux after 900 s"}}
    assert written["gateways"]["gw-02"]["stages"] == {"identify": {"status": "done", "changed": False, "seconds": 2.0}}
    assert written["gateways"]["gw-03"]["stages"] == {"identify": {"status": "done", "changed": False}}
    assert done["failed_gateways"] == ["gw-01"]


def test_an_acceptance_kept_from_an_earlier_run_is_ready_and_says_so():
    done = _report({"gw-01": {"inventory": {"changed": False, "seconds": 0.2},
                              "accept": {"changed": False, "reachable": True, "earlier": True, "seconds": 0.3}}})
    assert done["ready"] == ["gw-01"]
    assert done["table"][1].split()[-1] == "run)" and "ok (earlier run)" in done["table"][1]
