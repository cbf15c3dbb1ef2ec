# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hand-over proved: each gateway reached as ttn-multitech-cm's ``make ping`` reaches it.

An ``ansible -m ansible.builtin.ping`` over the organisation's own inventory, so its group_vars, host_vars,
``ansible_ssh_common_args`` and ``ssh_config`` decide the path, as they will for ``make apply``. Unlike make ping
(whose ansible.cfg turns host key checking off for the last leg) both legs are checked: the jump leg against what
the organisation's ssh_config pins, the last leg against the gateway's own host key, so a tunnel port that leads
to another unit fails here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
import shutil
import subprocess
import sys
import tempfile

from ansible_collections.lorawan.conduit.plugins.module_utils._device_values import shown
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, ledger_argument_spec
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import KeyFormatError, parse_public_key
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import StageModule
from ansible_collections.lorawan.conduit.plugins.module_utils._unit_locks import Run

STAGE = "accept"


def ansible_tool(name="ansible"):
    """The Ansible command ``name`` beside the Python running this (the controller's), else the one on PATH, else
    None."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.access(beside, os.X_OK) else shutil.which(name)


def _reason(result):
    """What went wrong for one host, in one line, inert: ssh's words can carry what the far end sent."""
    text = result.get("msg") or result.get("module_stderr") or result.get("stderr") or "no answer"
    return shown(" ".join(str(text).split()), limit=600)


class Acceptance:
    """``ttn_acceptance``: one ``ansible`` run over the organisation's inventory for the whole batch."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.gateways = params["gateways"]

    def run(self):
        inventory = self.params["inventory_dir"]
        if not os.path.isdir(inventory):
            raise StageError("the organisation's inventory %s does not exist" % inventory, STAGE)
        results = self._accepted_earlier()
        to_reach = [entry for entry in self.gateways if entry["name"] not in results]
        answers = {}
        if to_reach:
            command = ansible_tool()
            if command is None:
                raise StageError("no ansible command beside %s or on PATH to reach the gateways with"
                                 % sys.executable, STAGE)
            work = tempfile.mkdtemp(prefix="lorawan-conduit-accept.")
            try:
                answers = self._ping(command, inventory, work, to_reach)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        for entry in to_reach:
            name = entry["name"]
            answer = answers.get(name)
            if answer is None:
                result = {"reachable": False, "msg": "%s: not a host of the organisation's inventory %s, so make "
                                                     "ping and make apply do not know it" % (name, inventory)}
            elif answer.get("ping") == "pong":
                result = {"reachable": True, "msg": "answered through the organisation's inventory and the jumphost"}
            else:
                result = {"reachable": False, "msg": "%s: make ping's path does not reach it (the organisation's "
                                                     "inventory, its ssh_config, the jumphost, the tunnel on port %s): "
                                                     "%s" % (name, entry.get("port"), _reason(answer))}
            result.update(changed=False, failed=not result["reachable"])
            results[name] = result
        return {"changed": False, "gateways": results,
                "reachable": sorted(name for name, result in results.items() if result["reachable"]),
                "failed_gateways": sorted(name for name, result in results.items() if not result["reachable"])}

    def _accepted_earlier(self):
        """``{gateway: its result}`` for the gateways whose acceptance an earlier run filed and which no stage of
        this run has changed since (``trust_earlier``): the path make ping takes is the one that run proved."""
        if not self.params["trust_earlier"] or not self.params.get("ledger_dir"):
            return {}
        ledger, run = Ledger(self.params["ledger_dir"]), Run.current().name()
        results = {}
        for entry in self.gateways:
            try:
                stages = ledger.read(entry["name"]).get("stages") or {}
            except (StageError, IOError, OSError):
                continue  # reached below, and its outcome filed afresh
            accepted = stages.get(STAGE) or {}
            changed_now = [stage for stage, outcome in stages.items()
                           if isinstance(outcome, dict) and outcome.get("run") == run and outcome.get("changed")]
            if accepted.get("status") == "done" and accepted.get("run") != run and not changed_now:
                results[entry["name"]] = {
                    "reachable": True, "changed": False, "failed": False, "earlier": True,
                    "msg": "answered through the organisation's inventory and the jumphost in an earlier run (%s); "
                           "nothing in this run changed it since" % shown(accepted.get("at") or "undated")}
        return results

    @staticmethod
    def _known_hosts(work, gateways):
        """The last leg's known_hosts: each gateway's own keys under ``[localhost]:<its tunnel port>``."""
        path = os.path.join(work, "known_hosts")
        with open(path, "w") as handle:
            for entry in gateways:
                for key in entry.get("host_keys") or []:
                    try:
                        text = parse_public_key(key).text(comment="")
                    except KeyFormatError as exc:
                        raise StageError("%s: host key %s is not a public key (%s)" % (entry["name"], shown(key), exc),
                                         STAGE, gateway=entry["name"])
                    handle.write("[localhost]:%d %s\n" % (entry["port"], text))
        return path

    def _ping(self, command, inventory, work, gateways):
        """``{host: its result}`` as ansible's tree callback writes them; hosts it did not know are absent."""
        tree = os.path.join(work, "tree")
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True",
                   ANSIBLE_TIMEOUT=str(self.params["timeout"]), ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_PIPELINING="True",  # one connection per gateway, as ttn-multitech-cm's ansible.cfg has it
                   ANSIBLE_SSH_ARGS="-o ControlMaster=no -o BatchMode=yes -o StrictHostKeyChecking=yes "
                                    "-o UserKnownHostsFile=%s" % self._known_hosts(work, gateways),
                   ANSIBLE_LOCAL_TEMP=os.path.join(work, "tmp"))
        argv = [command, "-i", inventory, "-m", "ansible.builtin.ping", "-o", "--tree", tree, "--limit",
                ",".join(entry["name"] for entry in gateways), "--forks", str(self.params["forks"]), "all"]
        limit = self.params["timeout"] * 4 + 60
        try:
            done = subprocess.run(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, check=False, timeout=limit)
        except subprocess.TimeoutExpired:
            raise StageError("ansible -m ansible.builtin.ping over %s gave no answer in %d s" % (inventory, limit),
                             STAGE)
        answers = {}
        for name in os.listdir(tree) if os.path.isdir(tree) else []:
            with open(os.path.join(tree, name)) as handle:
                try:
                    answers[name] = json.load(handle)
                except ValueError:
                    answers[name] = {"msg": "ansible wrote no result for it"}
        # 2: some hosts failed, 4: some unreachable; anything else with no result is ansible itself failing
        if not answers and done.returncode not in (0, 2, 4):
            raise StageError("ansible could not run over the organisation's inventory %s (exit status %d): %s"
                             % (inventory, done.returncode,
                                done.stderr.decode("utf-8", "replace").strip()[-1500:]), STAGE)
        return answers


TTN_ACCEPTANCE = StageModule(
    Acceptance,
    dict(
        inventory_dir=dict(type="path", required=True),
        gateways=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            port=dict(type="int", required=True),
            host_keys=dict(type="list", elements="str", no_log=False, default=[]),
        )),
        timeout=dict(type="int", default=30),
        forks=dict(type="int", default=8),
        trust_earlier=dict(type="bool", default=False),
        **ledger_argument_spec()
    ),
    ledger_stage=STAGE,
)
