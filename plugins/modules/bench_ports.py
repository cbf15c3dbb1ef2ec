#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: bench_ports
short_description: Make the provisioning host's USB NICs bench ports for factory Conduits
version_added: 0.1.0
description:
  - For every network interface matching O(ports) (names, globs, or C(mac:) globs of the NIC's own MAC) - keeps
    NetworkManager off it (when NetworkManager is installed), brings it up, gives it O(address) (the same on every
    port) and a loose reverse-path filter, so that sockets bound to it (C(SO_BINDTODEVICE)) reach the unit behind it.
  - With O(vrf=true), also puts each port into a VRF of its own for operators who want plain C(ssh) through
    C(ip vrf exec); where the kernel has no VRF support this is skipped with the reason as a warning (the
    collection's own traffic does not need VRFs).
  - Runs on the provisioning host, as root.
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
attributes:
  check_mode:
    support: full
    details: Returns the planned actions; changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  ports:
    description: The bench NICs, for example V(enx*) or V(mac:00:e0:4c:*).
    type: list
    elements: str
    required: true
  address:
    description: The host's address on every bench port, in CIDR notation.
    type: str
    default: 192.168.2.200/24
  vrf:
    description: Put each port into its own VRF, where the kernel supports VRFs.
    type: bool
    default: false
  vrf_table_base:
    description: Routing table of the first port's VRF; the others follow.
    type: int
    default: 1000
  networkmanager_conf:
    description: The NetworkManager drop-in that lists the ports as unmanaged.
    type: path
    default: /etc/NetworkManager/conf.d/90-lorawan-conduit-bench.conf
seealso:
  - plugin: lorawan.conduit.conduits
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Make every USB NIC a bench port
  lorawan.conduit.bench_ports:
    ports: ["enx*"]
  become: true
"""

RETURN = r"""
interfaces:
  description: The NICs that matched.
  returned: success
  type: list
  elements: str
actions:
  description: What was done, or in check mode what would be done.
  returned: always
  type: list
  elements: str
vrf_skipped_reason:
  description: Why VRFs were not made (null when they were, or were not asked for).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lorawan.conduit.plugins.module_utils._bench_ports import BenchPorts
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ports=dict(type="list", elements="str", required=True),
            address=dict(type="str", default="192.168.2.200/24"),
            vrf=dict(type="bool", default=False),
            vrf_table_base=dict(type="int", default=1000),
            networkmanager_conf=dict(type="path", default="/etc/NetworkManager/conf.d/90-lorawan-conduit-bench.conf"),
        ),
        supports_check_mode=True,
    )
    try:
        result = BenchPorts(module.params, module.run_command, check_mode=module.check_mode).run()
    except StageError as exc:
        module.fail_json(msg=exc.message, stage=exc.stage, **exc.context)
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
