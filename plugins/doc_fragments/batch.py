# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


class ModuleDocFragment:
    # A device stage worked on for a whole batch at once, in one task (what provisioning does).
    DOCUMENTATION = r"""
options:
  gateways:
    description:
      - A batch of gateways, worked on all at once by this one task (one thread per gateway inside Ansible's worker
        process, whatever the number of forks); run the task once for the play (C(run_once)).
      - Each entry holds that gateway's options (at least C(name), and its address and the like); the task's other
        options apply to every entry that does not set them (an empty or null value counts as not set). Each entry
        is checked on its own; one that is refused
        or fails is that gateway's result in RV(gateways), the others go on.
      - While the batch works, a line every O(progress_interval) seconds says how many gateways are in which phase
        (uploading with MB/s, flashing, restarting...) and for how long.
      - The worker dies with C(ansible-playbook), however that ends, so no device work goes on after it.
      - With O(ledger_dir), each gateway is locked for this C(ansible-playbook) run in the ledger's C(.locks)
        folder (made private, links refused) before it is worked on; a gateway another run is working on is refused
        with that run's user, host, PID and start time. A lock whose run has ended is taken over. Not taken in
        check mode.
    type: list
    elements: dict
  progress_interval:
    description: With O(gateways), seconds between progress lines.
    type: int
    default: 30
"""
