#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: gateway_decommission
short_description: Take a provisioned Conduit out of service, on the unit and in the records
version_added: 0.1.0
description:
  - In two parts, around the gateway's removal from the jumphost (M(lorawan.conduit.jumphost_register) with
    C(state=absent)), as the playbook C(lorawan.conduit.decommission) runs them.
  - O(part=unit), while its tunnel still leads to it (reached as the other device modules reach it, in the field
    through the jumphost, see O(jump_host), its host key pinned to the ledger's) removes what provisioning put on the
    unit - the tunnel's defaults, init script and boot links, root's keys in O(authorized_keys), the jumphost's
    pin in root's C(known_hosts) - and stops the tunnel last, detached. A unit that does not answer keeps them, and
    RV(remaining) says so.
  - O(part=records) takes the gateway out of the organisation's ttn-multitech-cm inventory (its host_vars file, or
    folder, and its lines in an INI C(hosts) file; a backup of each file kept beside it, every other byte kept) and
    retires its ledger record to C(<ledger_dir>/retired/<name>.<UTC time>.yml), so that no inventory lists it again.
  - RV(remaining) lists what is left for a person (the gateway in The Things Stack, the unit itself).
  - Runs on the controller (use C(delegate_to) or a local connection).
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.batch
  - lorawan.conduit.device_ssh
attributes:
  check_mode:
    support: full
    details: Lists every action in RV(actions) and does none of them.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Once the records are retired, the gateway is unknown to the ledger and a second run refuses it.
options:
  name:
    description: The gateway's name; its ledger record is C(<ledger_dir>/<name>.yml).
    type: str
    required: true
  part:
    description: Which part to do (see the description).
    type: str
    choices: [unit, records]
    required: true
  authorized_keys:
    description: The keys provisioning installed for root (C(conduit_authorized_keys)), removed from the unit.
    type: list
    elements: str
    default: []
  inventory_dir:
    description: The organisation's ttn-multitech-cm inventory (the folder with C(hosts) and C(host_vars)).
    type: path
  ledger_dir:
    description: The provisioning ledger.
    type: path
    required: true
seealso:
  - module: lorawan.conduit.jumphost_register
"""

EXAMPLES = r"""
- name: Remove the tunnel and root's keys from the unit, through the jumphost
  lorawan.conduit.gateway_decommission:
    name: ttn-example-00-08-00-4a-26-f1
    part: unit
    address: 127.0.0.1
    port: 20001
    password: "{{ vault_mlinux_password }}"
    authorized_keys: "{{ conduit_authorized_keys }}"
    jump_host: jumphost.example.org
    jump_user: ops
    jump_host_keys: "{{ jumphost_host_keys }}"
    ledger_dir: "{{ conduit_ledger_dir }}"
  delegate_to: localhost

- name: Take it out of the organisation's inventory and retire its ledger record
  lorawan.conduit.gateway_decommission:
    name: ttn-example-00-08-00-4a-26-f1
    part: records
    address: 127.0.0.1
    inventory_dir: /srv/org-ttn-example/inventory
    ledger_dir: "{{ conduit_ledger_dir }}"
  delegate_to: localhost
"""

RETURN = r"""
gateways:
  description: With O(gateways), each gateway's result by name, with the keys returned for one gateway (and C(failed), C(msg) when it failed).
  returned: with O(gateways)
  type: dict
failed_gateways:
  description: With O(gateways), the gateways that failed or were refused.
  returned: with O(gateways)
  type: list
  elements: str
actions:
  description: What was done (in check mode, what would be), in words.
  returned: always
  type: list
  elements: str
remaining:
  description: What is left for a person to do, in words.
  returned: always
  type: list
  elements: str
seconds:
  description: How long the module took, in seconds.
  returned: always
  type: float
"""
