# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


class ModuleDocFragment:
    # A stage that files its outcome in the provisioning ledger.
    DOCUMENTATION = r"""
options:
  ledger_dir:
    description:
      - The provisioning ledger, a folder on the controller with one record per gateway (C(<name>.yml)).
      - Once the module has worked on a gateway, the outcome of this stage goes in the gateway's record under
        C(stages), whether it succeeded or failed - C(status) (V(done) or V(failed)), C(changed), C(seconds),
        C(reason) (the failure's words), C(run) (the C(ansible-playbook) run, by user, host, PID and start time)
        and C(at) - beside what the stage established there. The report of a run and the next run read it.
      - A gateway whose outcome cannot be filed (an unreadable record, a read-only folder) fails, saying so.
      - Nothing is filed in check mode.
    type: path
"""
