# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provisioning ledger: one YAML record per gateway under ``<provisioning>/ledger/``.

Each record holds what was learnt about the unit (identity, pinned host keys,
TLS fingerprint), the jumphost allocation and, per stage, what the stage
established (its details: the stage modules write them) and the outcome of its
latest run (status done or failed, changed, seconds, the failure's reason, the
run and when: the action plugins file it, whatever the stage did). One writer
per file at a time (a run holds the gateway's lock), every write is atomic
(temp file, fsync, rename), and nothing secret goes in: a key that looks like a
secret is refused before anything is written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy
import datetime
import os
import re

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._files import write_atomic
from ansible_collections.lorawan.conduit.plugins.module_utils._yaml import safe_load

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

SCHEMA_VERSION = 1
# the order a person reads a record in; other keys follow
KEY_ORDER = ("schema", "gateway", "needs_attention", "identity", "mlinux_version", "host_keys", "reach",
             "tls_fingerprint", "jumphost", "tunnel", "stages", "history")
_SECRET_KEY = re.compile(r"pass|secret|token|private", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _refuse_secrets(value, where="record"):
    if isinstance(value, dict):
        for key, item in value.items():
            if _SECRET_KEY.search(str(key)):
                raise ValueError("the ledger takes no secrets, and %s.%s looks like one" % (where, key))
            _refuse_secrets(item, "%s.%s" % (where, key))
    elif isinstance(value, list):
        for item in value:
            _refuse_secrets(item, where)


class Ledger:
    """Read and write the records under ``directory``."""

    def __init__(self, directory):
        self.directory = directory

    def path(self, gateway):
        if not _NAME.match(gateway or ""):
            raise StageError("%r is not a gateway name the ledger can file" % gateway, "ledger")
        return os.path.join(self.directory, "%s.yml" % gateway)

    def read(self, gateway):
        """The gateway's record; an empty one when the ledger has none yet."""
        path = self.path(gateway)
        try:
            with open(path) as handle:
                record = safe_load(handle)
        except IOError:
            if not os.path.exists(path):
                return {"schema": SCHEMA_VERSION, "gateway": gateway, "stages": {}}
            raise
        except yaml.YAMLError as exc:
            raise StageError("%s: the ledger file %s is not valid YAML (%s); fix or remove it"
                             % (gateway, path, exc), "ledger", ledger=path)
        if not isinstance(record, dict) or record.get("gateway") != gateway:
            raise StageError("%s: %s is not this gateway's ledger record; fix or remove it" % (gateway, path),
                             "ledger", ledger=path)
        if record.get("schema") != SCHEMA_VERSION:
            raise StageError("%s: %s has ledger schema %r, this collection reads %d; upgrade the collection"
                             % (gateway, path, record.get("schema"), SCHEMA_VERSION), "ledger", ledger=path)
        record.setdefault("stages", {})
        return record

    def write(self, gateway, record):
        """Write ``record`` atomically; False (and no write) when the file already holds exactly it."""
        _refuse_secrets(record)
        path = self.path(gateway)
        ordered = dict((key, record[key]) for key in KEY_ORDER if key in record)
        ordered.update((key, value) for key, value in record.items() if key not in ordered)
        text = yaml.safe_dump(ordered, default_flow_style=False, sort_keys=False)
        try:
            with open(path) as handle:
                if handle.read() == text:
                    return False
        except IOError:
            pass
        try:
            write_atomic(path, text)
        except OSError as exc:
            raise self._unwritable(gateway, path, exc)
        return True

    @staticmethod
    def _unwritable(gateway, path, exc):
        """A write that failed (a full disk, a read-only folder): the record stays as it was, whole."""
        return StageError("%s: could not write its ledger file %s (%s): it stays as it was; free space there, or make "
                          "the folder writable, then run again" % (gateway, path, exc.strerror or exc), "ledger",
                          gateway=gateway)


# the outcome of a stage's latest run, filed by record_outcome; the other keys of a stage are its details
OUTCOME_KEYS = ("status", "changed", "seconds", "reason", "run", "at")
_REASON_LENGTH = 4000


def ledger_argument_spec():
    """The option of every stage module that files its outcome (documented in the lorawan.conduit.ledger fragment)."""
    return dict(ledger_dir=dict(type="path"))


def record_stage(record, stage, **details):
    """A copy of ``record`` whose ``stage`` holds ``details`` (what the stage established); its outcome is kept."""
    updated = copy.deepcopy(record)
    previous = updated["stages"].get(stage) or {}
    entry = dict((key, value) for key, value in previous.items() if key in OUTCOME_KEYS)
    entry.update(details)
    updated["stages"][stage] = entry
    return updated


def record_outcome(record, stage, result, run):
    """A copy of ``record`` with the outcome of ``stage`` in ``run`` (a task result: failed, changed, msg,
    seconds); the stage's details are kept."""
    updated = copy.deepcopy(record)
    previous = updated["stages"].get(stage) or {}
    failed = bool(result.get("failed"))
    entry = {"status": "failed" if failed else "done", "changed": bool(result.get("changed"))}
    if isinstance(result.get("seconds"), (int, float)):
        entry["seconds"] = result["seconds"]
    if failed:
        entry["reason"] = str(result.get("msg") or "failed")[:_REASON_LENGTH]
    entry.update(run=run, at=now())
    entry.update((key, value) for key, value in previous.items() if key not in OUTCOME_KEYS)
    updated["stages"][stage] = entry
    return updated


def file_outcome(directory, gateway, stage, result, run):
    """File ``result`` as the outcome of ``stage`` in ``run`` in the gateway's record under ``directory``."""
    ledger = Ledger(directory)
    ledger.write(gateway, record_outcome(ledger.read(gateway), stage, result, run))


def file_outcomes(directory, stage, outcomes, run):
    """File each ``{gateway: outcome}``; an outcome that cannot be filed becomes that gateway's failure, in words."""
    for gateway, outcome in sorted(outcomes.items()):
        try:
            file_outcome(directory, gateway, stage, outcome, run)
        except (StageError, OSError, ValueError) as exc:
            words = exc.message if isinstance(exc, StageError) else str(exc)
            outcome.update(failed=True, msg="%s: the %s stage %s, but its outcome could not be filed in the ledger "
                                            "%s: %s" % (gateway, stage, "failed" if outcome.get("failed") else "ended",
                                                        directory, words))
