#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: ttn_inventory
short_description: Write a gateway into the organisation's ttn-multitech-cm inventory
version_added: 0.1.0
description:
  - Writes the gateway's host_vars with what ttn-multitech-cm needs for it, and adds the gateway to O(group) in
    C(<inventory_dir>/hosts) (INI or YAML, edited in its own format) when no group lists it yet.
  - The host_vars file is the one Ansible reads - C(<name>.yml), C(<name>.yaml), C(<name>), or the file of a
    C(<name>/) folder that holds the pipeline's keys (else a new C(lorawan_conduit.yml) there); a new
    C(<name>.yml) when there is none. Symlinks are followed; owner, group and mode are kept; C(!vault) and
    C(!unsafe) values are kept as written.
  - The pipeline owns C(hostname), C(ansible_host) (V(localhost), the jumphost's loopback), C(ansible_port), C(ansible_user),
    C(ssh_tunnel_remote_port), C(ssh_tunnel_keepalive_base_port), C(ssh_tunnel_local_port),
    C(ssh_tunnel_gateway_user_on_jumphost) (when O(jumphost_user) is given), C(ssh_tunnel_remote_host) and
    C(ssh_tunnel_ssh_port) (when the organisation sets none), C(mlinux_version) and the
    C(lorawan_conduit_*) identity keys; only those are updated in an existing file, line by line, so every other
    key, value and comment stays as the operator wrote it. A new file also gets C(description), position
    placeholders and C(eth0_type).
  - The C(hosts) file keeps its comments, order and other groups; a missing group is created as a child of
    C(conduits). Gateways written at once (a batch, or parallel runs) take turns on it under a lock.
  - Refuses, and writes nothing, when the entry would break C(make apply) - a C(hostname) that is no valid gateway
    ID, a non-integer altitude, an C(mlinux_version) other than the installed one (C(make apply) would flash again),
    no C(ssh_tunnel_gateway_user_on_jumphost) in reach (C(make apply) would delete the tunnel), a tunnel port
    another gateway of the inventory uses, an organisation C(ssh_tunnel_remote_host) or C(ssh_tunnel_ssh_port)
    other than the jumphost the tunnel uses (C(make apply) would point the tunnel elsewhere), an organisation
    C(authorized_keys) entry that is no public key (C(make apply) installs the list as root's only keys), a value
    read from the unit outside its strict form, a read-only file or folder it would write, two host_vars files
    Ansible would merge - or when C(hosts) or a variables file does not parse (file, line, reason). Every check runs
    before the first write.
  - With O(jumphost_host_keys), pins the jumphost's host keys for the jump leg of C(make ping) and C(make apply)
    (C(ProxyJump=)O(jump_host) under O(ssh_config), which takes no options from ssh's command line). Unless a
    known_hosts file that entry reads (as C(ssh -G) resolves it) holds one of them already, they go into
    C(known_hosts) beside O(ssh_config), and the O(jump_host) entry gets a C(UserKnownHostsFile) line naming that
    file. A known_hosts file that holds another key for the jumphost is refused (ssh would refuse the connection).
    Every gateway of a batch shares these two files; a lock serialises them.
  - A change of several files is all or nothing; when a later write fails, the files written before are put back.
  - Warns about org-wide variables ttn-multitech-cm needs and the inventory lacks, naming the file where they belong.
  - Runs on the controller.
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.ledger
  - lorawan.conduit.batch
attributes:
  check_mode:
    support: full
    details: Reads and checks everything, returns the planned changes and the diff, writes nothing.
  diff_mode:
    support: full
    details: Shows the changes of the host_vars file and of C(hosts).
  idempotent:
    support: full
options:
  name:
    description: The gateway's inventory host name (and the host_vars file name).
    type: str
    required: true
  inventory_dir:
    description: The organisation's inventory folder (C(<org>/inventory), holding C(hosts), C(group_vars), C(host_vars)).
    type: path
    required: true
  group:
    description: The group a new gateway goes into (ttn-multitech-cm's convention - V(test) first, then V(production)).
    type: str
    default: test
  hostname:
    description: The gateway ID on The Things Stack, 3-36 characters (default O(name)).
    type: str
  description:
    description: The gateway's name on The Things Stack, for a new file (default the hostname). Any text.
    type: str
  latitude:
    description: Latitude in degrees, for a new file (placeholder 0.0).
    type: float
  longitude:
    description: Longitude in degrees, for a new file (placeholder 0.0).
    type: float
  altitude:
    description: Altitude in whole metres, for a new file (placeholder -1, unknown).
    type: raw
  eth0_type:
    description: How eth0 is configured, for a new file.
    type: str
    choices: [dhcp, static, manual]
    default: dhcp
  tunnel_port:
    description: The tunnel port on the jumphost (M(lorawan.conduit.jumphost_register)'s RV(lorawan.conduit.jumphost_register#module:port)).
    type: int
    required: true
  keepalive_port:
    description: The keepalive base port.
    type: int
    required: true
  local_port:
    description: The gateway's port the tunnel leads to.
    type: int
    default: 22
  ansible_user:
    description: The user ttn-multitech-cm logs in as (C(ansible_user)).
    type: str
    default: root
  jumphost_user:
    description: The gateway's account on the jumphost; written for the host so the tunnel never depends on group_vars.
    type: str
  tunnel_remote_host:
    description:
      - The jumphost the gateway's tunnel uses now, as the gateway reaches it. Default is what the ledger's record
        of the tunnel stage says.
      - The organisation's C(ssh_tunnel_remote_host), which C(make apply) writes into the unit's tunnel, must be this
        value, or the gateway is refused with the file, the value it has and the value it needs; where the
        organisation sets none, it is written for the host.
    type: str
  tunnel_remote_ssh_port:
    description: The jumphost's SSH port for the tunnel (default from the ledger, else 22); C(ssh_tunnel_ssh_port) is
      checked the same way as O(tunnel_remote_host).
    type: int
  installed_mlinux_version:
    description: The mLinux version the unit runs (M(lorawan.conduit.gateway_facts)); written as C(mlinux_version).
    type: str
  mlinux_version:
    description: An explicit C(mlinux_version); refused when it differs from O(installed_mlinux_version).
    type: str
  identity:
    description: What the pipeline read from the unit (mac, serial, lora_eui, product_id, ...), written as C(lorawan_conduit_<key>).
    type: dict
  backup:
    description: Keep the previous version of a file it changes, beside it.
    type: bool
    default: false
  jumphost_host_keys:
    description:
      - The jumphost's public host keys (C(type base64) each), as RV(lorawan.conduit.jumphost_register#module:jumphost_host_keys)
        returns them. Without them the jump leg is not pinned.
    type: list
    elements: str
  ssh_config:
    description: The organisation's ssh_config, which C(ansible_ssh_common_args) passes with C(-F); default
      C(ssh_config) beside O(inventory_dir).
    type: path
  jump_host:
    description: The ssh_config entry of the jumphost, as C(ProxyJump=) in C(ansible_ssh_common_args) names it.
    type: str
    default: jumphost
seealso:
  - module: lorawan.conduit.gateway_facts
  - module: lorawan.conduit.jumphost_register
"""

EXAMPLES = r"""
- name: Put the gateway into the organisation's inventory
  lorawan.conduit.ttn_inventory:
    name: "{{ inventory_hostname }}"
    inventory_dir: /srv/org-ttn-nyc/inventory
    description: "Water tower #3, north side"
    tunnel_port: "{{ jumphost_register_result.port }}"
    keepalive_port: "{{ jumphost_register_result.keepalive_port }}"
    jumphost_user: "{{ jumphost_register_result.user }}"
    installed_mlinux_version: "{{ gateway_facts_result.mlinux_version }}"
    identity: "{{ gateway_facts_result.identity }}"
    backup: true
  delegate_to: localhost

- name: Put a batch of gateways into it at once
  lorawan.conduit.ttn_inventory:
    inventory_dir: /srv/org-ttn-nyc/inventory
    gateways:
      - {name: ttn-nyc-water-tower-3, tunnel_port: 20001, keepalive_port: 40002, jumphost_user: ttn-nyc-water-tower-3}
      - {name: ttn-nyc-library, tunnel_port: 20002, keepalive_port: 40004, jumphost_user: ttn-nyc-library}
    ledger_dir: /srv/provisioning/ledger
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
gateway:
  description: The gateway's name in the inventory.
  returned: success
  type: str
actions:
  description: What was written, or in check mode what would be.
  returned: always
  type: list
  elements: str
host_vars:
  description: The host_vars file.
  returned: success
  type: str
hosts:
  description: The hosts file.
  returned: success
  type: str
groups:
  description: The groups that list the gateway (after the run).
  returned: success
  type: list
  elements: str
changed_keys:
  description: The host_vars keys written in this run.
  returned: success
  type: list
  elements: str
missing_org_vars:
  description: Org-wide variables ttn-multitech-cm needs that the inventory does not set.
  returned: success
  type: list
  elements: str
gateways:
  description: With O(gateways), each gateway's result by name, with the keys returned for one gateway (and C(failed), C(msg) when it failed).
  returned: with O(gateways)
  type: dict
failed_gateways:
  description: With O(gateways), the gateways that failed or were refused.
  returned: with O(gateways)
  type: list
  elements: str
seconds:
  description: How long the module took, in seconds; with O(gateways), each gateway's result in RV(gateways) has its own.
  returned: always
  type: float
  sample: 12.3
"""
