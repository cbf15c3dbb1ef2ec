# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin behind each jumphost module: the module runs on the jumphost, the outcome goes in the ledger.

The module itself runs where the task points (the jumphost, with become), as any module does. What it says about
each gateway is then filed here, on the controller, in the provisioning ledger (option ``ledger_dir``, which
never reaches the jumphost), the same way the controller-side stages file theirs. A jumphost that cannot be
reached, or a become that is refused, is the task's failure in words, so every gateway of the batch gets them:
Ansible would otherwise count the one host the task ran for as unreachable and say nothing of the others.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import time

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import file_outcomes
from ansible_collections.lorawan.conduit.plugins.module_utils._unit_locks import Run


class JumphostAction(ActionBase):
    """Subclasses say which stage they file (``ledger_stage``) and each gateway's part of a result
    (:meth:`outcomes`)."""

    ledger_stage = None
    _supports_check_mode = True
    _supports_async = False

    def outcomes(self, args, result, jumphost):
        """``{gateway: its outcome}`` to file for the module's ``result`` of ``args``; each is also the gateway's
        part of ``result`` (a failure of the whole task, in words that name the gateway and ``jumphost``)."""
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super(JumphostAction, self).run(tmp, task_vars)
        del tmp  # no longer used by Ansible
        args = dict(self._task.args)
        ledger_dir = args.pop("ledger_dir", None)
        started = time.monotonic()
        jumphost = self._task.delegate_to or task_vars.get("inventory_hostname")
        try:
            result.update(self._execute_module(module_name=self._task.action, module_args=args,
                                               task_vars=task_vars))
        except AnsibleError as exc:
            result.update(failed=True, msg="could not run %s there: %s" % (
                self._task.action, " ".join(to_text(exc.message).split())))
        finally:
            try:
                self._remove_tmp_path(self._connection._shell.tmpdir)  # pylint: disable=protected-access
            except AnsibleError:
                # the jumphost went away mid-task: what is left there this run cannot reach, and Ansible's own
                # cleanup after the task would try again and count the gateway unreachable instead of failed
                self._connection._shell.tmpdir = None  # pylint: disable=protected-access
        result["seconds"] = round(time.monotonic() - started, 1)
        outcomes = self.outcomes(args, result, jumphost)
        for outcome in outcomes.values():
            outcome.setdefault("seconds", result["seconds"])
        if ledger_dir and not self._task.check_mode:
            file_outcomes(ledger_dir, self.ledger_stage, outcomes, Run.current().name())
        return result
