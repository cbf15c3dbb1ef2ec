#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: ttn_acceptance
short_description: Prove the hand-over - reach each gateway as ttn-multitech-cm's make ping does
version_added: 0.1.0
description:
  - Runs C(ansible -m ansible.builtin.ping) once for the batch over the organisation's own inventory
    (O(inventory_dir)), so its group_vars, host_vars, C(ansible_ssh_common_args) and C(ssh_config) decide the
    path to each gateway, through the jumphost and the gateway's tunnel, as they will for C(make apply).
  - Both legs are checked strictly and in batch mode - the jump leg against what the organisation's ssh_config
    pins (M(lorawan.conduit.ttn_inventory) pins it), the last leg against the gateway's own host keys under
    C([localhost]:<port>) - so a tunnel port that leads to another unit fails too. (C(make ping) itself does not
    check the last leg; ttn-multitech-cm's C(ansible.cfg) turns that off.)
  - A gateway that answers gets the C(accept) stage V(done) in the ledger, the provisioning run's last stage (the
    M(lorawan.conduit.conduits) inventory then counts it as provisioned); one that does not gets V(failed) with
    the reason, and the next run tries it again.
  - Runs on the controller, once per batch. The module itself fails only when ansible cannot run over the
    inventory at all; each gateway's fate is in RV(gateways).
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.ledger
attributes:
  check_mode:
    support: full
    details: Connects and pings the same (a ping changes nothing); does not write the ledger.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The ledger changes only when a gateway's result does.
options:
  inventory_dir:
    description: The organisation's inventory (C(<TTN_ORG>/inventory)).
    type: path
    required: true
  gateways:
    description: The gateways to reach, by their name in that inventory.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The gateway's inventory host name.
        type: str
        required: true
      port:
        description: Its tunnel port on the jumphost (C(ansible_port) in its host_vars).
        type: int
        required: true
      host_keys:
        description:
          - Its SSH host public keys (C(type base64) each), as M(lorawan.conduit.gateway_facts) read them. The last
            leg must present one of them.
        type: list
        elements: str
        default: []
  timeout:
    description: Seconds each connection may take (C(ANSIBLE_TIMEOUT) of that run).
    type: int
    default: 30
  forks:
    description:
      - How many gateways that run reaches at once. Each opens its own jump leg, and an sshd with its default
        C(MaxStartups 10:30:100) starts refusing new connections at random once 10 are still authenticating, so
        the default stays below that with room for the operators' own sessions.
    type: int
    default: 8
  trust_earlier:
    description:
      - Whether a gateway whose ledger record holds an acceptance an earlier run filed, and which no stage of this
        run has changed (no outcome of this run in its record says changed), keeps that acceptance without being
        reached again; its result then has RV(gateways.earlier). Needs O(ledger_dir).
      - The path make ping takes is then the one that earlier run proved; an edit to the organisation's
        group_vars or ssh_config since is not seen. V(false) reaches every gateway.
    type: bool
    default: false
seealso:
  - module: lorawan.conduit.ttn_inventory
"""

EXAMPLES = r"""
- name: Reach the gateways as make ping does
  lorawan.conduit.ttn_acceptance:
    inventory_dir: /srv/org-ttn-nyc/inventory
    gateways:
      - name: ttn-nyc-00-08-00-4a-26-f1
        port: 20075
        host_keys: ["{{ gateway_facts_result.host_keys.rsa }}"]
    ledger_dir: "{{ inventory_dir | dirname }}/ledger"
  delegate_to: localhost
  run_once: true
  register: acceptance
"""

RETURN = r"""
gateways:
  description: Per gateway name, whether it answered and in words why not.
  returned: always
  type: dict
  sample:
    ttn-nyc-00-08-00-4a-26-f1: {reachable: true, msg: answered through the organisation's inventory and the jumphost}
  contains:
    reachable:
      description: Whether it answered the ping.
      type: bool
    msg:
      description: What happened, in words.
      type: str
    earlier:
      description: Present (V(true)) when the gateway kept an earlier run's acceptance (O(trust_earlier)).
      type: bool
      returned: when the gateway was not reached again
reachable:
  description: The gateways that answered.
  returned: always
  type: list
  elements: str
  sample: [ttn-nyc-00-08-00-4a-26-f1]
failed_gateways:
  description: The gateways that did not.
  returned: always
  type: list
  elements: str
  sample: []
seconds:
  description: How long the module took, in seconds (each gateway's result in RV(gateways) has the same).
  returned: always
  type: float
  sample: 12.3
"""
