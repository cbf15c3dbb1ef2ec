# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report: one row per gateway, one column per stage, the failure in words, the make lines.

Each stage's outcome is the one it filed in the ledger in this run; the play's results stand in where the ledger
holds none of this run (check mode files nothing, a gateway another run holds is not filed, a play without a
ledger)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import datetime
import json
import os

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._files import ensure_directory, write_atomic
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import StageModule
from ansible_collections.lorawan.conduit.plugins.module_utils._unit_locks import Run

STAGES = ("commission", "upgrade", "identify", "register", "tunnel", "inventory", "accept")
_MARK = {"done": "ok", "failed": "FAILED", "planned": "would change"}


def _cell(outcome):
    if not outcome:
        return ""
    status = outcome.get("status", "")
    mark = "changed" if status == "done" and outcome.get("changed") else _MARK.get(status, status)
    if outcome.get("earlier"):
        return mark + " (earlier run)"
    seconds = outcome.get("seconds")
    return "%s %.0fs" % (mark, seconds) if seconds is not None and status in ("done", "failed") else mark


class Report:
    """Build the table and the files from each gateway's stage results."""

    def __init__(self, params, check_mode=False, clock=None, run=None):
        self.params = params
        self.check_mode = check_mode
        self.now = (clock or (lambda: datetime.datetime.now(datetime.timezone.utc)))()
        self.run_name = run or Run.current().name()
        self.ledger = Ledger(params["ledger_dir"]) if params.get("ledger_dir") and not check_mode else None

    def _filed(self, name):
        """The stage outcomes the gateway's ledger record holds of this run (none when it cannot be read)."""
        if self.ledger is None:
            return {}
        try:
            stages = self.ledger.read(name).get("stages") or {}
        except (StageError, IOError, OSError):
            return {}
        filed = {}
        for stage, entry in stages.items():
            if isinstance(entry, dict) and entry.get("run") == self.run_name and entry.get("status") in _MARK:
                filed[stage] = dict((key, entry[key]) for key in ("status", "changed", "seconds", "reason")
                                    if key in entry)
        return filed

    def _outcome(self, result):
        """A stage's outcome from its result: none when the stage did not run for the gateway."""
        if not isinstance(result, dict) or not result or result.get("skipped"):
            return None
        changed = bool(result.get("changed"))
        if result.get("failed"):
            outcome = {"status": "failed", "changed": changed, "reason": str(result.get("msg") or "failed")}
        else:
            outcome = {"status": "planned" if self.check_mode and changed else "done", "changed": changed}
        if result.get("earlier"):
            outcome["earlier"] = True  # kept from an earlier run: this run spent no time on it
        elif isinstance(result.get("seconds"), (int, float)):
            outcome["seconds"] = result["seconds"]
        return outcome

    def _stopped(self, gateways):
        """Where the batch stopped: after the first stage that left more than the allowed share failed, when a
        gateway that did not fail went no further."""
        allowed = self.params.get("max_fail_percentage")
        if allowed is None or not gateways:
            return None
        failed = 0
        for position, stage in enumerate(STAGES[:-1]):
            failed += len([entry for entry in gateways.values()
                           if (entry["stages"].get(stage) or {}).get("status") == "failed"])
            if failed * 100 <= allowed * len(gateways):
                continue
            held = [name for name, entry in gateways.items()
                    if not any((outcome or {}).get("status") == "failed" for outcome in entry["stages"].values())
                    and not any(later in entry["stages"] for later in STAGES[position + 1:])]
            if held:
                return "batch stopped after the %s stage: %d of %d gateways failed (more than %d%%)" % (
                    stage, failed, len(gateways), allowed)
            return None
        return None

    def run(self):
        states = self.params.get("states") or {}
        gateways = {}
        results = self.params["results"]
        names = set(states)
        for by_gateway in results.values():
            names.update(by_gateway or {})
        for name in names:
            filed = self._filed(name)
            stages = dict((stage, filed.get(stage) or self._outcome((results.get(stage) or {}).get(name)))
                          for stage in STAGES)
            gateways[name] = {"state": states.get(name),
                              "stages": dict((stage, outcome) for stage, outcome in stages.items() if outcome)}
        stopped = self._stopped(gateways)
        rows, ready, failed = [], [], []
        for name in sorted(gateways):
            entry = gateways[name] or {}
            outcomes = entry.get("stages") or {}
            reason = ""
            for stage in STAGES:
                if (outcomes.get(stage) or {}).get("status") == "failed":
                    reason = "%s: %s" % (stage, outcomes[stage].get("reason") or "failed")
                    failed.append(name)
            if entry.get("state") == "unreachable" and not outcomes:
                reason = "unreachable: the unit answered neither HTTPS nor SSH"
                failed.append(name)
            if entry.get("state") == "refused":
                reason = "refused: %s" % ((self.params.get("refusals") or {}).get(name) or "set aside by discovery")
                failed.append(name)
            if (outcomes.get("accept") or {}).get("status") == "done":
                ready.append(name)
            rows.append([name, entry.get("state") or ""] + [_cell(outcomes.get(stage)) for stage in STAGES]
                        + [reason])
        header = ["gateway", "state"] + list(STAGES) + ["reason"]
        org = self.params.get("org_dir")
        make_lines = []
        if ready and org:
            target = ",".join(ready)
            make_lines = ["make TTN_ORG=%s TARGET=%s ping" % (org, target),
                          "make TTN_ORG=%s TARGET=%s apply" % (org, target)]
        summary = "%d gateway(s): %d ready for make apply, %d failed" % (len(rows), len(ready), len(set(failed)))
        if stopped:
            summary += "; %s" % stopped
        markdown = self._markdown(header, rows, summary, make_lines)
        # not "failed": Ansible would take the task for failed
        result = {"changed": False, "summary": summary, "table": self._text(header, rows), "ready": ready,
                  "failed_gateways": sorted(set(failed)), "make_lines": make_lines, "markdown": None, "json": None}
        directory = self.params.get("report_dir")
        if directory and not self.check_mode:
            ensure_directory(directory)
            stem = os.path.join(directory, self.now.strftime("%Y%m%dT%H%M%SZ"))
            document = {"date": self.now.isoformat(), "run": self.run_name, "summary": summary, "gateways": gateways, "ready": ready,
                        "failed": sorted(set(failed)), "make_lines": make_lines, "stopped": stopped}
            write_atomic(stem + ".json", json.dumps(document, indent=2, sort_keys=True) + "\n")
            write_atomic(stem + ".md", markdown)
            result.update(changed=True, markdown=stem + ".md", json=stem + ".json")
        return result

    @staticmethod
    def _text(header, rows):
        widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
        return ["  ".join(str(value).ljust(width) for value, width in zip(row, widths)).rstrip()
                for row in [header] + rows]

    def _markdown(self, header, rows, summary, make_lines):
        def escape(value):
            return str(value).replace("|", "\\|").replace("\n", " ")
        lines = ["# Provisioning run %s" % self.now.strftime("%Y-%m-%d %H:%M:%S UTC"), "", summary, "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(escape(value) for value in row) + " |" for row in rows]
        if make_lines:
            lines += ["", "Next, from the ttn-multitech-cm checkout:", "", "```"] + make_lines + ["```"]
        return "\n".join(lines) + "\n"


PROVISION_REPORT = StageModule(
    Report,
    dict(
        results=dict(type="dict", required=True),
        states=dict(type="dict", default={}),
        refusals=dict(type="dict", default={}),
        report_dir=dict(type="path"),
        org_dir=dict(type="path"),
        ledger_dir=dict(type="path"),
        max_fail_percentage=dict(type="int"),
    ),
)
