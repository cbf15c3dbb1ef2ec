#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: provision_report
short_description: Write the report of a provisioning run
version_added: 0.1.0
description:
  - Turns each gateway's stage results into a table (returned for the screen) and writes
    C(<report_dir>/<UTC timestamp>.md) and C(.json) with, per gateway, each stage's outcome and time and the failure
    reason in words, plus the C(make ... ping) and C(make ... apply) lines for the gateways that completed.
  - Runs on the controller, once per run.
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
attributes:
  check_mode:
    support: full
    details: Returns the table; writes no file.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run writes a report of its own.
options:
  results:
    description:
      - Per stage (V(commission), V(upgrade), V(identify), V(register), V(tunnel), V(inventory), V(accept)), each
        gateway's result by name, as the stage's batch returned them (what a batch module returns as C(gateways)).
      - A result that is missing, empty or C(skipped) means the stage did not run for the gateway; C(failed) with
        C(msg) is a failure and its reason; C(changed) and C(seconds) are shown as they are. In check mode a changed
        result is shown as V(would change).
    type: dict
    required: true
  states:
    description: Per gateway name, the state discovery found it in.
    type: dict
    default: {}
  refusals:
    description:
      - Per gateway name, why discovery set the gateway aside (state V(refused), its C(conduit_refused)); an empty
        value for the others.
    type: dict
    default: {}
  report_dir:
    description: Where the report files go; without it nothing is written.
    type: path
  org_dir:
    description: The organisation's folder (C(TTN_ORG)), for the make lines.
    type: path
  ledger_dir:
    description:
      - The provisioning ledger. Each stage's outcome is read from the gateway's record there when this
        C(ansible-playbook) run filed it; O(results) stand in for the others (check mode files nothing, a gateway
        another run holds is not filed). An unreadable record is left to O(results).
    type: path
  max_fail_percentage:
    description:
      - The share of the batch (in percent) that may fail before the batch stops; with it the report says after
        which stage the batch stopped, when gateways that did not fail went no further.
    type: int
"""

EXAMPLES = r"""
- name: Write the report
  lorawan.conduit.provision_report:
    results:
      commission: {gw-01: {changed: true, seconds: 41.2}}
      upgrade: {gw-01: {failed: true, msg: "gw-01: no mLinux after 900 s"}}
    report_dir: "{{ inventory_dir }}/reports"
    ledger_dir: "{{ inventory_dir | dirname }}/ledger"
    org_dir: /srv/org-ttn-nyc
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
table:
  description: The table, one line per row, for the screen.
  returned: always
  type: list
  elements: str
summary:
  description: How many gateways are ready and how many failed.
  returned: always
  type: str
ready:
  description: The gateways that completed every stage.
  returned: always
  type: list
  elements: str
failed_gateways:
  description: The gateways that failed a stage or could not be reached.
  returned: always
  type: list
  elements: str
make_lines:
  description: The ttn-multitech-cm commands for the gateways that completed.
  returned: always
  type: list
  elements: str
markdown:
  description: The Markdown report written (null in check mode or without O(report_dir)).
  returned: always
  type: str
json:
  description: The JSON report written.
  returned: always
  type: str
seconds:
  description: How long the module took, in seconds.
  returned: always
  type: float
  sample: 12.3
"""
