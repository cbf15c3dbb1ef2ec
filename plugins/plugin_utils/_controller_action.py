# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin behind each controller-side stage module.

When the task's target is the controller itself (a local connection, the way provisioning runs every device
stage), the module's body (:class:`StageModule`) runs right here in the worker process: no Python to start, no
``AnsibleModule`` to import, no payload to build. Anywhere else (another host, ``become``, ``async``) the module is
shipped and run the ordinary way. Both paths validate with the same argument spec and return the same result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import traceback

from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase


class _ModuleDone(Exception):
    """``exit_json``/``fail_json`` of :class:`ControllerModule`: the module body ends here with ``result``."""

    def __init__(self, result):
        super(_ModuleDone, self).__init__("module finished")
        self.result = result


class ControllerModule:
    """What :meth:`StageModule.run` uses of ``AnsibleModule``, for a module body that runs in the worker.

    ``args`` are checked against the same argument spec as in ``AnsibleModule`` (types, defaults, choices,
    ``required_one_of``, unknown options); the values of ``no_log`` options are masked in whatever it returns."""

    def __init__(self, args, argument_spec, check_mode=False, diff=False, name="module", supports_check_mode=True,
                 **constraints):
        del supports_check_mode  # every stage module supports it; AnsibleModule takes it, the validator does not
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []
        validation = ModuleArgumentSpecValidator(argument_spec, **constraints).validate(args)
        self.no_log_values = validation._no_log_values  # pylint: disable=protected-access
        self.params = validation.validated_parameters
        if validation.error_messages:
            message = validation.errors.msg
            if isinstance(validation.errors[0], UnsupportedError):  # worded as AnsibleModule words it
                message = "Unsupported parameters for (%s) module: %s" % (name, message)
            self.fail_json(msg=message)

    def warn(self, warning):
        self.warnings.append(warning)

    def exit_json(self, **result):
        raise _ModuleDone(self.finish(result))

    def fail_json(self, msg, **result):
        result.update(msg=msg, failed=True)
        raise _ModuleDone(self.finish(result))

    def finish(self, result):
        """The task result: secrets masked, warnings attached, ``changed`` always present."""
        result = remove_values(result, self.no_log_values)
        result.setdefault("changed", False)
        if self.warnings:
            result["warnings"] = remove_values(self.warnings, self.no_log_values)
        return result


class ControllerAction(ActionBase):
    """Subclasses name their module's body: ``stage_module = StageModule(...)``."""

    stage_module = None
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True

    def runs_here(self):
        """Whether the module would run on this machine as this user, so its body can run in this process."""
        return (getattr(self._connection, "transport", None) == "local" and not self._play_context.become
                and not self._task.async_val)

    def run(self, tmp=None, task_vars=None):
        result = super(ControllerAction, self).run(tmp, task_vars)
        del tmp  # no longer used by Ansible
        if not self.runs_here():
            wrap_async = self._task.async_val and not self._connection.has_native_async
            result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)  # pylint: disable=protected-access
            return result
        # What a shipped module gets: plain JSON values (templating may have left tagged or vaulted objects)
        args = json.loads(json.dumps(self._task.args, default=str))
        try:
            module = ControllerModule(args, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff),
                                      name=self._task.action, **self.stage_module.module_arguments())
        except _ModuleDone as refused:
            result.update(refused.result)
            return result
        try:
            self.stage_module.run(module)
            module.fail_json(msg="%s ended without a result" % self._task.action)
        except _ModuleDone as finished:
            result.update(finished.result)
        except Exception as exc:  # pylint: disable=broad-except
            # A shipped module would end as MODULE FAILURE; keep the words and the trace, with secrets masked
            result.update(module.finish({"failed": True, "exception": traceback.format_exc(),
                                         "msg": "%s failed unexpectedly: %s" % (self._task.action, exc)}))
        return result
