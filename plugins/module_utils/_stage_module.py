# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a controller-side stage module is: its options and the body of its ``main()``.

The same body runs in two places: in ``AnsibleModule`` when Ansible ships the module to a Python of its own (a
remote controller, ``become``, ``async``), and in the collection's action plugin, inside the controller's worker,
when the task's target is the controller itself (``delegate_to: localhost``). Starting a Python and importing
``ansible.module_utils.basic`` and paramiko costs about 0.3 CPU seconds a task; running in the worker does not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError


class StageModule:
    """``stage(params, check_mode=...).run()`` behind the module's options.

    ``requirements``: ``(library, present, import_error)`` triples checked before the stage runs;
    ``module_kwargs``: the other keyword arguments of ``AnsibleModule`` (``required_one_of``, ...)."""

    def __init__(self, stage, argument_spec, requirements=(), **module_kwargs):
        self.stage = stage
        self.argument_spec = argument_spec
        self.requirements = tuple(requirements)
        self.module_kwargs = module_kwargs

    def module_arguments(self):
        """Fresh keyword arguments for ``AnsibleModule`` (or the action plugin's equivalent)."""
        kwargs = copy.deepcopy(self.module_kwargs)
        kwargs.update(argument_spec=copy.deepcopy(self.argument_spec), supports_check_mode=True)
        return kwargs

    def run(self, module):
        """The whole of ``main()`` once ``module`` exists: ends in ``module.exit_json`` or ``module.fail_json``."""
        for library, present, import_error in self.requirements:
            if not present:
                from ansible.module_utils.basic import missing_required_lib  # only for this message
                module.fail_json(msg=missing_required_lib(library), exception=import_error)
        try:
            result = self.stage(module.params, check_mode=module.check_mode).run()
        except StageError as exc:
            module.fail_json(msg=exc.message, stage=exc.stage, **exc.context)
        for warning in result.pop("warnings", None) or []:
            module.warn(warning)
        if not module._diff:  # pylint: disable=protected-access
            result.pop("diff", None)
        module.exit_json(**result)
