"""The ledger: atomic, idempotent writes, no secrets, clear errors on a broken record."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils import _ledger
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, file_outcome, record_outcome, record_stage


def test_a_record_round_trips_and_a_second_identical_write_changes_nothing(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger"))
    record = ledger.read("gw-1")
    assert record == {"schema": 1, "gateway": "gw-1", "stages": {}}
    record = record_stage(dict(record, identity={"mac": "00:08:00:4a:26:f1"}), "identify")
    assert ledger.write("gw-1", record) is True
    mtime = os.stat(ledger.path("gw-1")).st_mtime_ns
    assert ledger.write("gw-1", ledger.read("gw-1")) is False
    assert os.stat(ledger.path("gw-1")).st_mtime_ns == mtime
    with open(ledger.path("gw-1")) as handle:
        assert list(yaml.safe_load(handle)) == ["schema", "gateway", "identity", "stages"]


def test_a_stage_s_details_change_its_entry_only_when_they_differ_and_keep_its_outcome():
    record = record_outcome({"stages": {}}, "tunnel", {"changed": True, "seconds": 4.2}, "run-1")
    record = record_stage(record, "tunnel", tunnel_port=20000)
    assert record_stage(record, "tunnel", tunnel_port=20000) == record
    moved = record_stage(record, "tunnel", tunnel_port=20001)["stages"]["tunnel"]
    assert moved["tunnel_port"] == 20001 and moved["status"] == "done" and moved["run"] == "run-1"


def test_an_outcome_replaces_the_previous_one_and_keeps_the_stage_s_details():
    record = record_stage({"stages": {}}, "identify", mlinux_version="6.3.5")
    failure = {"failed": True, "changed": False, "msg": "gw-1: no answer", "seconds": 30.0}
    record = record_outcome(record, "identify", failure, "run-1")
    entry = record["stages"]["identify"]
    assert (entry["status"], entry["reason"], entry["seconds"]) == ("failed", "gw-1: no answer", 30.0)
    assert entry["run"] == "run-1"
    assert entry["mlinux_version"] == "6.3.5" and entry["at"]
    entry = record_outcome(record, "identify", {"changed": True, "seconds": 2.5}, "run-2")["stages"]["identify"]
    assert (entry["status"], entry["changed"], entry["run"]) == ("done", True, "run-2")
    assert entry["mlinux_version"] == "6.3.5"
    assert "reason" not in entry


def test_an_outcome_is_filed_atomically_with_the_record_it_joins(tmp_path):
    ledger = Ledger(str(tmp_path))
    ledger.write("gw-1", {"schema": 1, "gateway": "gw-1", "identity": {"mac": "00:08:00:4a:26:f1"}, "stages": {}})
    file_outcome(str(tmp_path), "gw-1", "commission", {"changed": True, "seconds": 41.0}, "run-1")
    record = ledger.read("gw-1")
    assert record["identity"] == {"mac": "00:08:00:4a:26:f1"}
    assert record["stages"]["commission"]["status"] == "done" and record["stages"]["commission"]["seconds"] == 41.0
    assert sorted(os.listdir(str(tmp_path))) == ["gw-1.yml"]


def test_secrets_are_refused_before_anything_is_written(tmp_path):
    ledger = Ledger(str(tmp_path))
    with pytest.raises(ValueError) as caught:
        ledger.write("gw-1", {"schema": 1, "gateway": "gw-1", "stages": {}, "aep": {"admin_password": "x"}})
    assert "record.aep.admin_password" in str(caught.value)
    assert os.listdir(str(tmp_path)) == []


def test_an_interrupted_write_leaves_the_previous_record_whole(tmp_path, monkeypatch):
    ledger = Ledger(str(tmp_path))
    first = {"schema": 1, "gateway": "gw-1", "stages": {"identify": {"status": "done"}}}
    ledger.write("gw-1", first)

    def power_cut(_fd):
        raise OSError("power cut")

    monkeypatch.setattr(_ledger.os, "fsync", power_cut)
    with pytest.raises(StageError, match="could not write its ledger file .*gw-1.yml .power cut.: it stays as it was"):
        ledger.write("gw-1", dict(first, identity={"mac": "00:08:00:00:00:01"}))
    assert os.listdir(str(tmp_path)) == ["gw-1.yml"]
    assert ledger.read("gw-1") == first


@pytest.mark.parametrize("content,reason", [
    ("schema: 1\ngateway: gw-1\nstages: {\n", "is not valid YAML"),
    ("schema: 1\ngateway: gw-2\nstages: {}\n", "is not this gateway's ledger record"),
    ("schema: 7\ngateway: gw-1\nstages: {}\n", "has ledger schema 7"),
])
def test_a_broken_record_names_its_file(tmp_path, content, reason):
    (tmp_path / "gw-1.yml").write_text(content)
    with pytest.raises(StageError) as caught:
        Ledger(str(tmp_path)).read("gw-1")
    assert reason in caught.value.message and str(tmp_path / "gw-1.yml") in caught.value.message


def test_a_ledger_folder_made_meanwhile_by_another_gateway_is_not_an_error(tmp_path, monkeypatch):
    """Every gateway of a batch writes its first record at once; the folder may appear between look and mkdir."""
    import os as os_module
    from ansible_collections.lorawan.conduit.plugins.module_utils import _files
    folder = tmp_path / "ledger"
    real_makedirs = os_module.makedirs

    def made_by_another_first(path, mode=0o777):
        real_makedirs(path, mode)  # the other gateway's mkdir wins the race
        real_makedirs(path, mode)
    monkeypatch.setattr(_files.os, "makedirs", made_by_another_first)
    _files.ensure_directory(str(folder))
    assert folder.is_dir()
    (tmp_path / "plain").write_text("")
    monkeypatch.setattr(_files.os, "makedirs", real_makedirs)
    with pytest.raises(OSError):
        _files.ensure_directory(str(tmp_path / "plain"))
