# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin behind each controller-side stage module: the one way such a module runs.

Their work is on the controller (the units are reached from it, the ledger and the organisation's inventory are
its files), so the module's body (:class:`StageModule`) runs right here in Ansible's worker process, validated
against the module's argument spec as ``AnsibleModule`` would validate it: no Python to start, no payload to build,
and it dies with ``ansible-playbook``. A task that would have it run anywhere else (another host, ``become``,
``async``) is refused in words, never silently shipped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import ctypes
import ctypes.util
import json
import os
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import file_outcomes
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import Progress
from ansible_collections.lorawan.conduit.plugins.module_utils._unit_locks import LockHeld, Run, UnitLocks

display = Display()
PR_SET_PDEATHSIG = 1


def die_with_the_run():
    """This worker is killed when ansible-playbook ends, however it ends (even SIGKILL): no device work goes on
    without the run that asked for it. Linux only; elsewhere a no-op."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the run ended before the line above: nobody is waiting for this work
        os._exit(1)  # pylint: disable=protected-access


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
        for option in sorted(argument_spec):
            value = self.params.get(option)
            if option.endswith("password") and isinstance(value, str) and any(char in value for char in "\r\n\0"):
                self.fail_json(msg="%s: option %s holds a line break (or a NUL): a login and sudo -S take a password "
                                   "up to the first one, so it can never be right. Look at its value in the vault or "
                                   "vars file (a YAML block scalar, | or >, ends with a line break: use |- or a quoted "
                                   "string); nothing was done" % (self.params.get("name") or name, option))

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
    _supports_async = False

    def elsewhere(self):
        """Why the task would not run on this machine as this user (None when it does)."""
        if getattr(self._connection, "transport", None) != "local":
            return "its target is reached over %s" % getattr(self._connection, "transport", "a connection")
        if self._play_context.become:
            return "the task has become"
        return None

    def run(self, tmp=None, task_vars=None):
        if self._task.async_val:
            return {"failed": True, "msg": "%s runs in Ansible's own process on the controller and waits for the "
                                           "units itself: remove async from the task" % self._task.action}
        result = super(ControllerAction, self).run(tmp, task_vars)
        del tmp  # no longer used by Ansible
        why = self.elsewhere()
        if why:
            result.update(failed=True, msg="%s runs in Ansible's own process on the controller, but %s: give the task "
                                           "delegate_to: localhost (or a local connection) and no become; it reaches "
                                           "the units itself" % (self._task.action, why))
            return result
        # plain JSON values, as the documented option types expect (templating may leave tagged or vaulted objects)
        args = json.loads(json.dumps(self._task.args, default=str))
        die_with_the_run()
        if self.stage_module.batch and "gateways" in args:
            result.update(self._batch(args))
            return result
        module = self._module(args)
        result.update(module if isinstance(module, dict) else self._one(module, None, Run.current()))
        return result

    def _module(self, args):
        """The module for ``args``, or the refusal's result."""
        try:
            return ControllerModule(args, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff),
                                    name=self._task.action, **self.stage_module.module_arguments())
        except _ModuleDone as refused:
            return refused.result

    def _one(self, module, progress, run):
        """The module's result, with the seconds it took (the run's report shows them), filed in the ledger."""
        started = time.monotonic()
        try:
            self.stage_module.run(module, progress=progress)
            module.fail_json(msg="%s ended without a result" % self._task.action)
            result = {}  # not reached: fail_json raises _ModuleDone
        except _ModuleDone as finished:
            result = finished.result
        except Exception as exc:  # pylint: disable=broad-except
            result = module.finish({"failed": True, "exception": traceback.format_exc(),
                                    "msg": "%s failed unexpectedly: %s" % (self._task.action, exc)})
        result["seconds"] = round(time.monotonic() - started, 1)
        return self._file(module, result, run)

    def _file(self, module, result, run):
        """``result`` once its outcome is in the gateway's ledger record (each gateway's, for a result that has
        one per gateway), or failed, saying that it could not be filed."""
        stage, directory = self.stage_module.ledger_stage, module.params.get("ledger_dir")
        if not stage or not directory or module.check_mode:
            return result
        # a result that kept an earlier run's outcome (``earlier``) is in the ledger as that run filed it
        if module.params.get("name"):
            outcomes = {} if result.get("earlier") else {module.params["name"]: result}
        else:  # a module that works on its gateways together: each its own part of the result, or the whole
            parts = result.get("gateways") or {}
            outcomes = dict((entry["name"], parts.get(entry["name"], result))
                            for entry in module.params.get("gateways") or []
                            if not (parts.get(entry["name"]) or {}).get("earlier"))
            for part in parts.values():
                part["seconds"] = result["seconds"]
        file_outcomes(directory, stage, outcomes, run.name())
        return result

    def _batch(self, args):
        """Every gateway of ``gateways`` (each entry: that gateway's options over the task's) at once, in threads
        of this process, each locked for this run in its ledger; a result per gateway, and progress lines while
        they work."""
        entries = args.pop("gateways") or []
        interval = int(args.pop("progress_interval", None) or 30)
        results, modules = {}, {}
        run = Run.current()
        for entry in entries:
            # an empty or null value in an entry counts as not set (a role's "or omit" cannot reach into a list)
            entry = dict((key, value) for key, value in (entry or {}).items() if value not in ("", None))
            name = entry.get("name")
            if not name or name in results or name in modules:
                return {"failed": True, "msg": "gateways: every entry needs a name of its own (%r)" % (name,)}
            module = self._module(dict(args, **entry))
            if isinstance(module, dict):
                results[name] = module
                continue
            ledger_dir = module.params.get("ledger_dir")
            try:
                if ledger_dir and not module.check_mode:
                    UnitLocks(os.path.join(ledger_dir, ".locks"), run=run).take(name)
            except (LockHeld, OSError, ValueError) as exc:
                results[name] = module.finish({"failed": True, "msg": "%s: %s" % (name, exc), "stage": "lock"})
                continue
            modules[name] = module
        progress = dict((name, Progress()) for name in modules)
        done = threading.Event()
        watcher = threading.Thread(target=self._show_progress, args=(progress, results, done, interval))
        watcher.daemon = True
        watcher.start()
        try:
            if modules:
                with ThreadPoolExecutor(max_workers=len(modules)) as pool:
                    futures = dict((pool.submit(self._one, module, progress[name], run), name)
                                   for name, module in modules.items())
                    pending = set(futures)
                    while pending:
                        # wake every second: a signal Ansible sends this worker (SIGINT, SIGTERM) is handled only
                        # when this thread runs, and a unit may keep the batch waiting for minutes
                        finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                        for future in finished:
                            results[futures[future]] = future.result()
        finally:
            done.set()
        failed = sorted(name for name, result in results.items() if result.get("failed"))
        return {"changed": any(result.get("changed") for result in results.values()), "gateways": results,
                "failed_gateways": failed}

    def _show_progress(self, progress, results, done, interval):
        """Every ``interval`` s while the batch works: how many of its gateways are in which phase, since when."""
        stage = self._task.action.rsplit(".", 1)[-1]
        while not done.wait(interval):
            phases = {}
            for name, where in sorted(progress.items()):
                if name not in results:
                    phases.setdefault(where.phase, []).append((name, where))
            now = time.time()
            parts = []
            for phase, gateways in sorted(phases.items()):
                longest = max(now - where.since for _name, where in gateways)
                details = ", ".join(("%s %s" % (name, where.detail)).strip() for name, where in gateways[:4])
                more = " and %d more" % (len(gateways) - 4) if len(gateways) > 4 else ""
                parts.append("%d %s (longest %d s: %s%s)" % (len(gateways), phase, longest, details, more))
            finished = len([name for name in progress if name in results])
            display.display("%s: %d of %d gateways done; %s"
                            % (stage, finished, len(progress), "; ".join(parts) or "finishing"))
