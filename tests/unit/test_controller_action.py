"""ControllerModule: the module body's view of its options and results when it runs inside the worker. The real
path (ansible-playbook in the worker; become, another host and async refused) is the controller_action target."""

from __future__ import annotations

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import StageModule
from ansible_collections.lorawan.conduit.plugins.module_utils._unit_locks import Run
from ansible_collections.lorawan.conduit.plugins.plugin_utils._controller_action import (
    ControllerAction,
    ControllerModule,
    _ModuleDone,
)


class _Stage:
    """Echoes its options; fails with the password in the message when told to."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode

    def run(self):
        if self.params["fail"]:
            raise StageError("gw-1: the unit refused %s" % self.params["password"], "commission", gateway="gw-1")
        return {"changed": not self.check_mode, "port": self.params["port"], "echo": self.params["password"],
                "warnings": ["clock is off by %s" % self.params["password"]], "diff": {"before": "", "after": "x"}}


ECHO = StageModule(_Stage, dict(port=dict(type="int", default=22), password=dict(type="str", no_log=True),
                                key_file=dict(type="path"), fail=dict(type="bool", default=False)),
                   required_one_of=[("password", "key_file")])


def _run(args, check_mode=False, diff=False):
    with pytest.raises(_ModuleDone) as done:
        ECHO.run(ControllerModule(args, check_mode=check_mode, diff=diff, **ECHO.module_arguments()))
    return done.value.result


def test_options_are_converted_and_defaulted_as_ansible_module_does():
    result = _run({"port": "2222", "password": "Tr1cky#pass"})
    assert result["port"] == 2222 and result["changed"] is True


def test_no_log_values_are_masked_in_results_messages_and_warnings():
    result = _run({"password": "Tr1cky#pass"})
    assert result["echo"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" and result["warnings"] == ["clock is off by ********"]
    failed = _run({"password": "Tr1cky#pass", "fail": True})
    assert failed["failed"] and failed["msg"] == "gw-1: the unit refused ********" and failed["stage"] == "commission"


def test_diff_is_returned_in_diff_mode_only_and_check_mode_reaches_the_stage():
    assert "diff" not in _run({"password": "x1"})
    planned = _run({"password": "x1"}, check_mode=True, diff=True)
    assert planned["diff"] == {"before": "", "after": "x"} and planned["changed"] is False


@pytest.mark.parametrize("args,words", [
    ({"port": "twenty-two", "password": "x1"}, "port"),
    ({"password": "x1", "colour": "red"}, "colour"),
    ({}, "one of the following is required: password, key_file"),
    ({"password": "Tr1cky#pass\n"}, "option password holds a line break"),
    ({"password": "Tr1cky\r\n#pass"}, "it can never be right"),
    ({"password": "Tr1cky\0pass"}, "(or a NUL)"),
])
def test_bad_options_are_refused_before_the_stage_runs(args, words):
    with pytest.raises(_ModuleDone) as done:
        ControllerModule(args, **ECHO.module_arguments())
    assert done.value.result["failed"] and words in done.value.result["msg"]
    assert "Tr1cky" not in str(done.value.result)


class _Filing(ControllerAction):
    """The action plugin's filing alone, without a task around it."""

    stage_module = StageModule(_Stage, dict(name=dict(type="str"), ledger_dir=dict(type="path"),
                                            password=dict(type="str", no_log=True)), ledger_stage="commission")

    def __init__(self):  # pylint: disable=super-init-not-called
        pass


def _filed(tmp_path, result, name="gw-1"):
    action = _Filing()
    module = ControllerModule({"name": name, "ledger_dir": str(tmp_path), "password": "x1"},
                              **action.stage_module.module_arguments())
    return action._file(module, result, Run(4242, 77, "ops", "bench", "2026-12-02T01:00:00Z"))


def test_a_stage_files_each_gateway_s_outcome_under_the_run_s_name(tmp_path):
    result = _filed(tmp_path, {"changed": False, "failed": True, "msg": "gw-1: no answer", "seconds": 3.5})
    assert result["msg"] == "gw-1: no answer"
    entry = Ledger(str(tmp_path)).read("gw-1")["stages"]["commission"]
    assert (entry["status"], entry["reason"], entry["seconds"]) == ("failed", "gw-1: no answer", 3.5)
    assert entry["run"] == "ops@bench pid 4242 start tick 77"


def test_an_outcome_that_cannot_be_filed_fails_the_gateway_and_says_so(tmp_path):
    with open(str(tmp_path / "gw-1.yml"), "w") as handle:
        handle.write("schema: 1\ngateway: gw-1\nstages: {\n")
    result = _filed(tmp_path, {"changed": True, "seconds": 40.0})
    assert result["failed"] and result["msg"].startswith("gw-1: the commission stage ended, but its outcome could "
                                                         "not be filed in the ledger %s: " % tmp_path)
    assert "is not valid YAML" in result["msg"]
