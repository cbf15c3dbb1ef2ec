#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: jumphost_tunnels
short_description: List the gateways registered on the jumphost and whether their tunnels listen
version_added: 0.1.0
description:
  - Reads the registrations M(lorawan.conduit.jumphost_register) made (accounts of group C(<organisation>-gateways),
    or the lines of the shared tunnel account) and, for each gateway, whether its tunnel port listens right now
    and whether the listener belongs to the gateway's account. It changes nothing on the jumphost.
  - With O(ledger_dir) and O(wait_timeout), each gateway whose tunnel does not listen after the wait has that filed
    as the failure of its C(tunnel) stage, with the reason in RV(reasons) (a tunnel that listens keeps the outcome
    its installation filed).
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.ledger
  - lorawan.conduit.jumphost
attributes:
  check_mode:
    support: full
    details: Reads the jumphost the same; files nothing in the ledger.
  diff_mode:
    support: N/A
    details: Changes nothing on the jumphost.
  idempotent:
    support: full
options:
  gateways:
    description: Only these gateways (default all). Names not registered come back in RV(missing).
    type: list
    elements: str
  wait_timeout:
    description:
      - Seconds to wait until every gateway in O(gateways) has its tunnel listening; the module fails, naming the
        gateways whose tunnel is not up (RV(not_listening)), when they do not within that time. V(0) reports at
        once, and so does check mode (nothing was started that could come up).
    type: int
    default: 0
seealso:
  - module: lorawan.conduit.jumphost_register
"""

EXAMPLES = r"""
- name: Which tunnels are up?
  lorawan.conduit.jumphost_tunnels:
    organisation: ttn-nyc
  delegate_to: jumphost
  become: true
  run_once: true
  register: tunnels

- name: Wait until the new gateway's tunnel is up
  lorawan.conduit.jumphost_tunnels:
    organisation: ttn-nyc
    gateways: ["{{ inventory_hostname }}"]
    wait_timeout: 60
  delegate_to: jumphost
  become: true

- name: Show the gateways whose tunnel is down
  ansible.builtin.debug:
    msg: "{{ tunnels.tunnels | rejectattr('listening') | map(attribute='gateway') | list }}"
"""

RETURN = r"""
mode:
  description: The account mode read.
  returned: always
  type: str
tunnels:
  description: One entry per registered gateway, by port.
  returned: always
  type: list
  elements: dict
  contains:
    gateway:
      description: The gateway.
      type: str
    user:
      description: The account its tunnel logs in as.
      type: str
    port:
      description: Its tunnel port.
      type: int
    keepalive_port:
      description: Its keepalive base port.
      type: int
    key_fingerprint:
      description: SHA256 fingerprint of its key (null when the account holds none).
      type: str
    listening:
      description: Whether the tunnel port listens now, opened by the gateway's account.
      type: bool
    keepalive_listening:
      description: Whether the keepalive port listens now, opened by the gateway's account.
      type: bool
    port_held_by_other_uid:
      description: UIDs other than the gateway's that listen on its tunnel port (a port clash).
      type: list
      elements: int
missing:
  description: Gateways asked for in O(gateways) that are not registered.
  returned: always
  type: list
  elements: str
not_listening:
  description: When O(wait_timeout) ran out, the gateways whose tunnel does not listen or that are not registered.
  returned: on failure, after the wait
  type: list
  elements: str
  sample: [ttn-nyc-00-08-00-4a-26-f1]
reasons:
  description: When O(wait_timeout) ran out, what to check for each gateway of RV(not_listening), in words.
  returned: on failure, after the wait
  type: dict
seconds:
  description: How long the module took, in seconds.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._jumphost_accounts import (
    JumphostSystem,
    TunnelLister,
    jumphost_argument_spec,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import ledger_argument_spec


def main():
    argument_spec = jumphost_argument_spec()
    argument_spec.update(gateways=dict(type="list", elements="str"), wait_timeout=dict(type="int", default=0),
                         **ledger_argument_spec())  # filed on the controller by the action plugin
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = TunnelLister(module.params, JumphostSystem(module.run_command), check_mode=module.check_mode).run()
    except StageError as exc:
        module.fail_json(msg=exc.message, stage=exc.stage, **exc.context)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
