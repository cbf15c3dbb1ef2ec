#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: health_report
short_description: Write the report of a health run
version_added: 0.1.0
description:
  - Turns each gateway's M(lorawan.conduit.gateway_health) result into a table (returned for the screen) with its health
    (healthy, UNHEALTHY, needs attention, not checked), each check passed or failed, its uptime, the remediation
    steps taken and the reason in words; and writes C(<report_dir>/health-<UTC timestamp>.md) and C(.json).
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
    description: Each gateway's result by name, as M(lorawan.conduit.gateway_health) returned them (its C(gateways)).
    type: dict
    required: true
  unchecked:
    description: Gateways of the run that were not checked, by name, with the reason in words.
    type: dict
    default: {}
  report_dir:
    description: Folder the report files go in (made when missing); no files without it.
    type: path
seealso:
  - module: lorawan.conduit.gateway_health
"""

EXAMPLES = r"""
- name: Write the health report
  lorawan.conduit.health_report:
    results: "{{ health.gateways }}"
    report_dir: "{{ inventory_dir | dirname }}/reports"
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
  description: How many gateways are healthy, unhealthy, left alone and not checked.
  returned: always
  type: str
unhealthy:
  description: The gateways found unhealthy in this run, or not checked.
  returned: always
  type: list
  elements: str
needs_attention:
  description: The gateways left alone, as an earlier run marked them C(needs_attention).
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
  sample: 0.1
"""
