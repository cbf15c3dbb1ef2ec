#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: unit_state_info
short_description: Say which state Conduits are in, waiting for those still booting
version_added: 0.1.0
description:
  - Probes each unit as the C(lorawan.conduit.conduits) inventory does (its HTTPS and SSH ports, through its bench
    NIC when it has one, and the mPower commissioning check) and returns its state - V(aep_uncommissioned),
    V(aep), V(mlinux) or V(unreachable).
  - With O(wait_timeout), probes the units that have not settled again every O(interval) seconds until they
    do or the time is up - a unit that was still booting when the inventory looked. A unit has settled when SSH
    alone answers (mLinux) or its HTTPS port answers like mPower; an HTTPS port open before mPower answers is a
    unit still starting.
  - Changes nothing anywhere. Runs on the controller.
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.attributes.info_module
options:
  units:
    description: The units to probe.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The gateway's name, the key of its entry in RV(units).
        type: str
        required: true
      address:
        description: Where the unit answers.
        type: str
        required: true
      https_port:
        description: Its mPower HTTPS port.
        type: int
        default: 443
      ssh_port:
        description: Its SSH port.
        type: int
        default: 22
      bind_interface:
        description: The bench NIC to reach it through (C(SO_BINDTODEVICE), needs root); empty for none.
        type: str
        default: ""
  wait_timeout:
    description: Seconds to wait for units that have not settled; V(0) probes once.
    type: int
    default: 0
  interval:
    description: Seconds between two probes of a unit that has not settled.
    type: float
    default: 2.0
seealso:
  - plugin: lorawan.conduit.conduits
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Wait up to 10 minutes for two units that are booting
  lorawan.conduit.unit_state_info:
    units:
      - name: ttn-nyc-00-08-00-4a-26-f1
        address: 192.168.2.1
        bind_interface: enx00e04c680001
      - name: ttn-nyc-00-08-00-4a-26-f2
        address: 10.20.0.17
    wait_timeout: 600
  delegate_to: localhost
  register: late_units
"""

RETURN = r"""
units:
  description: Each unit's state by its name, and how long it was waited for.
  returned: always
  type: dict
  sample: {"ttn-nyc-00-08-00-4a-26-f1": {"state": "aep_uncommissioned", "waited": 41.5}}
  contains:
    state:
      description: V(aep_uncommissioned), V(aep), V(mlinux) or V(unreachable).
      type: str
    waited:
      description: Seconds from the first probe until it settled (or the wait ended).
      type: float
states:
  description: Each unit's state by its name (RV(units.state) alone).
  returned: always
  type: dict
  sample: {"ttn-nyc-00-08-00-4a-26-f1": "aep_uncommissioned"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lorawan.conduit.plugins.module_utils._discovery import Target, wait_for_units


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                address=dict(type="str", required=True),
                https_port=dict(type="int", default=443),
                ssh_port=dict(type="int", default=22),
                bind_interface=dict(type="str", default=""),
            )),
            wait_timeout=dict(type="int", default=0),
            interval=dict(type="float", default=2.0),
        ),
        supports_check_mode=True,
    )
    names = [unit["name"] for unit in module.params["units"]]
    twice = sorted(set(name for name in names if names.count(name) > 1))
    if twice:
        module.fail_json(msg="units lists %s more than once: one entry a unit" % ", ".join(twice))
    targets = [Target(unit["address"], interface=unit["bind_interface"] or None, source="listed",
                      https_port=unit["https_port"], ssh_port=unit["ssh_port"], name=unit["name"])
               for unit in module.params["units"]]
    units = wait_for_units(targets, module.params["wait_timeout"], interval=module.params["interval"])
    module.exit_json(changed=False, units=units, states=dict((name, unit["state"]) for name, unit in units.items()))


if __name__ == "__main__":
    main()
