# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a controller-side stage module is: its options and its body.

The body runs in the collection's action plugin, inside the controller's worker (``_controller_action``), the one
way these modules run: their work is on the controller, and a shipped module would be a second path (it once
differed in what it did with file ownership) and a process that outlives a killed ``ansible-playbook``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError


class StageModule:
    """``stage(params, check_mode=...).run()`` behind the module's options.

    ``requirements``: ``(library, present, import_error)`` triples checked before the stage runs;
    ``module_kwargs``: the argument spec's constraints as ``AnsibleModule`` takes them (``required_one_of``, ...);
    ``ledger_stage``: the stage whose outcome the action plugin files in the ledger (option ``ledger_dir``) for the
    gateway the module worked on (option ``name``), or for each gateway of its result's ``gateways``."""

    def __init__(self, stage, argument_spec, requirements=(), batch=False, ledger_stage=None, **module_kwargs):
        self.stage = stage
        self.ledger_stage = ledger_stage
        self.argument_spec = argument_spec
        self.requirements = tuple(requirements)
        # whether the module also takes a batch (option gateways) worked on at once; its stage takes progress=
        self.batch = batch
        self.module_kwargs = module_kwargs

    def module_arguments(self):
        """Fresh keyword arguments for the action plugin's module (what ``AnsibleModule`` would take)."""
        kwargs = copy.deepcopy(self.module_kwargs)
        kwargs.update(argument_spec=copy.deepcopy(self.argument_spec), supports_check_mode=True)
        return kwargs

    def run(self, module, progress=None):
        """The module's run once ``module`` exists: ends in ``module.exit_json`` or ``module.fail_json``.
        ``progress`` (batch modules): the :class:`Progress` the stage reports its phases to."""
        for library, present, import_error in self.requirements:
            if not present:
                from ansible.module_utils.basic import missing_required_lib  # only for this message
                module.fail_json(msg=missing_required_lib(library), exception=import_error)
        try:
            extra = {"progress": progress or Progress()} if self.batch else {}
            result = self.stage(module.params, check_mode=module.check_mode, **extra).run()
        except StageError as exc:
            module.fail_json(msg=exc.message, stage=exc.stage, **exc.context)
        for warning in result.pop("warnings", None) or []:
            module.warn(warning)
        if not module._diff:  # pylint: disable=protected-access
            result.pop("diff", None)
        module.exit_json(**result)


class Progress:
    """Where one gateway's stage stands, for the progress lines of a batch: a phase, since when, a detail."""

    def __init__(self, clock=time.time):
        self._clock = clock
        self.phase = "starting"
        self.detail = ""
        self.since = clock()

    def set(self, phase, detail=""):
        if phase != self.phase:
            self.phase = phase
            self.since = self._clock()
        self.detail = detail
