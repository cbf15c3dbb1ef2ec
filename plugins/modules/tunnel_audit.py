#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: tunnel_audit
short_description: Hold the jumphost's tunnels against the ledger and the organisation's inventory
version_added: 0.1.0
description:
  - Takes every tunnel the jumphost has registered (M(lorawan.conduit.jumphost_tunnels) without O(tunnels) filter),
    reads the ledger's records and the organisation's ttn-multitech-cm inventory (each host of C(conduits) and its
    C(ssh_tunnel_remote_port), as C(ansible-inventory) reads it), and returns one row per gateway with its findings
    in words; orphan accounts (on the jumphost only), registered gateways whose tunnel does not listen, gateways
    the ledger or the inventory names that the jumphost has not registered, a key on the jumphost other than the
    ledger's, port clashes (another account on the port, the three disagreeing, two gateways on one port),
    gateways missing from the inventory, and inventory entries without a tunnel port.
  - Returns the fixes that are safe (RV(fixes)), for the playbook to apply; it changes nothing itself.
  - Runs on the controller (use C(delegate_to) or a local connection).
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  tunnels:
    description: The jumphost's tunnels, as M(lorawan.conduit.jumphost_tunnels) returns them (its C(tunnels)).
    type: list
    elements: dict
    required: true
  ledger_dir:
    description: The provisioning ledger.
    type: path
  inventory_dir:
    description: The organisation's ttn-multitech-cm inventory (the folder with C(hosts)); not read when not given.
    type: path
seealso:
  - module: lorawan.conduit.jumphost_tunnels
"""

EXAMPLES = r"""
- name: Hold the jumphost's tunnels against the ledger and the organisation's inventory
  lorawan.conduit.tunnel_audit:
    tunnels: "{{ listing.tunnels }}"
    ledger_dir: "{{ conduit_ledger_dir }}"
    inventory_dir: "{{ conduit_org_dir }}/inventory"
  delegate_to: localhost
  run_once: true
  register: audit
"""

RETURN = r"""
table:
  description: The table, one line per row, for the screen.
  returned: always
  type: list
  elements: str
summary:
  description: How many tunnels there are, how many with findings, how many safe fixes.
  returned: always
  type: str
findings:
  description: Each gateway's findings by name, each with C(finding) (its kind) and C(detail) (in words); empty when it is as it should be.
  returned: always
  type: dict
troubled:
  description: The gateways with findings.
  returned: always
  type: list
  elements: str
fixes:
  description:
    - The safe fixes, as M(lorawan.conduit.jumphost_register) takes them in its
      O(lorawan.conduit.jumphost_register#module:gateways), each with C(gateway) and C(host_key) (the ledger's, to
      register again with its port kept).
  returned: always
  type: list
  elements: dict
markdown:
  description: The table as a Markdown document.
  returned: always
  type: str
seconds:
  description: How long the module took, in seconds.
  returned: always
  type: float
"""
