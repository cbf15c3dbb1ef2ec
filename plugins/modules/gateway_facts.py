#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: gateway_facts
short_description: Identify an mLinux Conduit over SSH and pin it in the provisioning ledger
version_added: 0.1.0
description:
  - Reads the unit's product id, serial, MAC, hardware version, UUID, LoRa EUI and LoRa card, mLinux version and SSH
    host public keys, in one SSH round trip, without sudo.
  - With O(ledger_dir), checks them against the gateway's ledger record and records them there (atomic write).
    The connection is pinned to the host keys in the ledger and refused before any password is sent when the
    unit offers another; O(reflashed=true) accepts new keys of a re-flashed unit, but only when its MAC and
    serial match the record.
  - A unit whose MAC or serial differs from the record is refused, as another unit.
  - Runs on the controller (use C(delegate_to) or a local connection).
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.ledger
  - lorawan.conduit.batch
  - lorawan.conduit.device_ssh
attributes:
  check_mode:
    support: full
    details: Reads the unit and checks it; does not write the ledger.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description: The gateway's name; its ledger record is C(<ledger_dir>/<name>.yml).
    type: str
    required: true
  host_key:
    description: The host key to expect when the ledger has none yet (for example the one M(lorawan.conduit.mlinux_upgrade) returned).
    type: str
  reflashed:
    description: Accept host keys that differ from the ledger's, for a unit that was re-flashed.
    type: bool
    default: false
  expected_product_type:
    description: Refuse a unit of another product type (V(mtcdt), V(mtcap)).
    type: str
seealso:
  - module: lorawan.conduit.gateway_tunnel
  - module: lorawan.conduit.mlinux_upgrade
"""

EXAMPLES = r"""
- name: Identify the flashed unit and pin it in the ledger
  lorawan.conduit.gateway_facts:
    name: "{{ inventory_hostname }}"
    address: "{{ conduit_address }}"
    password: "{{ vault_mlinux_password }}"
    ledger_dir: "{{ inventory_dir | dirname }}/ledger"
  delegate_to: localhost
  register: facts

- name: Accept the new host keys of a unit that was flashed again
  lorawan.conduit.gateway_facts:
    name: "{{ inventory_hostname }}"
    address: "{{ conduit_address }}"
    password: "{{ vault_mlinux_password }}"
    ledger_dir: "{{ inventory_dir | dirname }}/ledger"
    reflashed: true
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
identity:
  description: What the unit says it is.
  returned: success
  type: dict
  contains:
    product_id:
      description: Product id.
      type: str
      sample: MTCDT-246A
    product_type:
      description: The hardware version without its suffix, lower case.
      type: str
      sample: mtcdt
    serial:
      description: Device id (serial number).
      type: str
    mac:
      description: Ethernet MAC, lower case.
      type: str
      sample: 00:08:00:4a:26:f1
    hw_version:
      description: Hardware version.
      type: str
    uuid:
      description: Unit UUID.
      type: str
    lora_eui:
      description: LoRa card EUI, lower case.
      type: str
    lora_product_id:
      description: LoRa card product id.
      type: str
    lora_hw_version:
      description: LoRa card hardware version.
      type: str
mlinux_version:
  description: Version in C(/etc/mlinux-version).
  returned: success
  type: str
  sample: 5.3.31
host_keys:
  description: The unit's SSH host public keys by type (C(rsa) is the key its tunnel logs in with).
  returned: success
  type: dict
host_key:
  description: The host key the unit offered on this connection.
  returned: success
  type: str
reflashed:
  description: Whether new host keys were accepted for a re-flashed unit.
  returned: success
  type: bool
ledger:
  description: The ledger record's path (null without O(ledger_dir)).
  returned: success
  type: str
seconds:
  description: How long the module took, in seconds; with O(gateways), each gateway's result in RV(gateways) has its own.
  returned: always
  type: float
  sample: 12.3
"""
