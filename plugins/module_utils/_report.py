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


def text_table(header, rows):
    """The lines of a table for the screen: columns as wide as their widest value."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    return ["  ".join(str(value).ljust(width) for value, width in zip(row, widths)).rstrip()
            for row in [header] + rows]


def markdown_document(title, summary, header, rows, tail=()):
    """A Markdown report: a title, the summary, the table, then ``tail`` (lines)."""
    def escape(value):
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["# " + title, "", summary, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape(value) for value in row) + " |" for row in rows]
    if tail:
        lines += [""] + list(tail)
    return "\n".join(lines) + "\n"


def write_report(directory, stem, document, markdown):
    """``<stem>.json`` and ``<stem>.md`` in ``directory`` (made when missing), each written atomically: their
    paths."""
    ensure_directory(directory)
    base = os.path.join(directory, stem)
    write_atomic(base + ".json", json.dumps(document, indent=2, sort_keys=True) + "\n")
    write_atomic(base + ".md", markdown)
    return base + ".md", base + ".json"


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
        result = {"changed": False, "summary": summary, "table": text_table(header, rows), "ready": ready,
                  "failed_gateways": sorted(set(failed)), "make_lines": make_lines, "markdown": None, "json": None}
        directory = self.params.get("report_dir")
        if directory and not self.check_mode:
            document = {"date": self.now.isoformat(), "run": self.run_name, "summary": summary, "gateways": gateways, "ready": ready,
                        "failed": sorted(set(failed)), "make_lines": make_lines, "stopped": stopped}
            written = write_report(directory, self.now.strftime("%Y%m%dT%H%M%SZ"), document, markdown)
            result.update(changed=True, markdown=written[0], json=written[1])
        return result

    def _markdown(self, header, rows, summary, make_lines):
        tail = ["Next, from the ttn-multitech-cm checkout:", "", "```"] + make_lines + ["```"] if make_lines else []
        return markdown_document("Provisioning run %s" % self.now.strftime("%Y-%m-%d %H:%M:%S UTC"), summary, header,
                                 rows, tail)


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


HEALTH_CHECKS = ("reachable", "host_key", "tunnel", "mlinux_version", "lora_eui", "forwarder", "clock", "free_space")


def _uptime(seconds):
    if not isinstance(seconds, int):
        return "-"
    days, rest = divmod(seconds, 86400)
    return "%dd %dh" % (days, rest // 3600) if days else "%dh %dm" % (rest // 3600, rest % 3600 // 60)


def _health_cell(name, check):
    if not check:
        return "-"
    if not check["ok"]:
        return "FAIL"
    return "none" if name == "forwarder" and check.get("value") is None else "ok"


class HealthReport:
    """``health_report``: the health run's table on screen, and as Markdown and JSON, from each gateway's result."""

    def __init__(self, params, check_mode=False, clock=None, run=None):
        self.params = params
        self.check_mode = check_mode
        self.now = (clock or (lambda: datetime.datetime.now(datetime.timezone.utc)))()
        self.run_name = run or Run.current().name()

    def run(self):
        results = self.params["results"] or {}
        unchecked = self.params.get("unchecked") or {}
        rows, counts = [], {"healthy": 0, "unhealthy": 0, "needs attention": 0, "not checked": 0}
        gateways = {}
        for name in sorted(set(results) | set(unchecked)):
            result = results.get(name) or {}
            checks = result.get("checks") or {}
            attention = result.get("needs_attention") or {}
            if name in unchecked and name not in results:
                status, reason = "not checked", unchecked[name]
            elif result.get("earlier"):
                status = "needs attention"
                reason = "since %s: %s" % (attention.get("since", "?"), attention.get("reason", ""))
            elif result.get("healthy"):
                status, reason = "healthy", ""
            elif checks:
                status, reason = "unhealthy", result.get("msg") or attention.get("reason") or "unhealthy"
            else:
                status, reason = "not checked", result.get("msg") or "no result"
            counts[status] += 1
            cells = [_health_cell(check, checks.get(check)) for check in HEALTH_CHECKS]
            rows.append([name, status.upper() if status == "unhealthy" else status] + cells +
                        [_uptime((checks.get("uptime") or {}).get("value")),
                         ", ".join(result.get("remediation") or []), reason])
            gateways[name] = {"status": status, "checks": checks, "remediation": result.get("remediation") or [],
                              "reason": reason}
        header = ["gateway", "health"] + list(HEALTH_CHECKS) + ["uptime", "remediation", "reason"]
        summary = "%d gateway(s): %d healthy, %d unhealthy, %d left alone (needs attention), %d not checked" % (
            len(rows), counts["healthy"], counts["unhealthy"], counts["needs attention"], counts["not checked"])
        markdown = markdown_document("Health run %s" % self.now.strftime("%Y-%m-%d %H:%M:%S UTC"), summary, header,
                                     rows)
        unhealthy = sorted(name for name, entry in gateways.items() if entry["status"] in ("unhealthy", "not checked"))
        result = {"changed": False, "summary": summary, "table": text_table(header, rows), "markdown": None,
                  "json": None, "unhealthy": unhealthy,
                  "needs_attention": sorted(name for name, entry in gateways.items()
                                            if entry["status"] == "needs attention")}
        directory = self.params.get("report_dir")
        if directory and not self.check_mode:
            document = {"date": self.now.isoformat(), "run": self.run_name, "summary": summary, "gateways": gateways,
                        "unhealthy": unhealthy, "needs_attention": result["needs_attention"]}
            written = write_report(directory, "health-" + self.now.strftime("%Y%m%dT%H%M%SZ"), document, markdown)
            result.update(changed=True, markdown=written[0], json=written[1])
        return result


HEALTH_REPORT = StageModule(
    HealthReport,
    dict(
        results=dict(type="dict", required=True),
        unchecked=dict(type="dict", default={}),
        report_dir=dict(type="path"),
    ),
)
