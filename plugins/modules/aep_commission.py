#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: aep_commission
short_description: Commission a MultiTech Conduit running AEP (mPower) and enable SSH on its LAN side
version_added: 0.1.0
description:
  - Creates the admin user on a unit in commissioning mode (the three-step mPower dialogue), logs in, checks the
    product, enables SSH on the LAN side, saves, restarts the unit and waits until SSH answers.
  - Reads the unit first and changes only what is not already right; a unit already commissioned with SSH
    answering is left alone.
  - A unit that does not answer yet (still booting) is waited for up to O(boot_timeout) and is never taken for an
    already commissioned one.
  - Runs on the controller (use C(delegate_to) or a local connection); the unit is reached over HTTPS.
  - Check mode sends no request that changes the unit, not even C(command/revert).
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.ledger
  - lorawan.conduit.batch
  - lorawan.conduit.mpower
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the SSH settings before and after.
  idempotent:
    support: full
requirements:
  - requests
options:
  username:
    description: The admin user to create (commissioning) and to log in with.
    type: str
    default: mtadm
  password:
    description:
      - The admin password. On a factory unit this becomes the password; on a commissioned unit it must be the one
        set then. Any punctuation the unit accepts works.
    type: str
    required: true
  expected_product_type:
    description:
      - Refuse the unit unless its product type (V(mtcdt), V(mtcap), ...) is this one. Checked before any setting
        is changed. On a factory unit the admin user has to be created first to read the product.
    type: str
  expected_product_id:
    description: Refuse the unit unless its product id (for example V(MTCDT-246A)) is this one (any case).
    type: str
  ssh_port:
    description: Port SSH is to listen on, on the LAN side.
    type: int
    default: 22
  wait:
    description: After a restart, wait until SSH answers.
    type: bool
    default: true
  boot_timeout:
    description: Seconds to wait for the API of a unit that is still booting.
    type: int
    default: 300
  reboot_timeout:
    description: Seconds to wait for SSH after the restart.
    type: int
    default: 600
notes:
  - The password is sent only over HTTPS and URL-encoded; it is never logged or returned.
seealso:
  - module: lorawan.conduit.mlinux_upgrade
"""

EXAMPLES = r"""
- name: Commission every factory unit on the bench and enable SSH
  lorawan.conduit.aep_commission:
    name: "{{ inventory_hostname }}"
    address: "{{ conduit_address }}"
    bind_interface: "{{ bench_port }}"
    password: "{{ vault_aep_admin_password }}"
    expected_product_type: mtcdt
  delegate_to: localhost

- name: See what would be done, changing nothing
  lorawan.conduit.aep_commission:
    address: "{{ conduit_address }}"
    password: "{{ vault_aep_admin_password }}"
  check_mode: true
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
commissioned:
  description: Whether this run created the admin user.
  returned: success
  type: bool
rebooted:
  description: Whether this run restarted the unit.
  returned: success
  type: bool
ssh_changed:
  description: Whether the SSH settings were (or in check mode would be) changed.
  returned: success
  type: bool
ssh:
  description: The SSH settings after the run.
  returned: success
  type: dict
  contains:
    enabled:
      description: SSH enabled.
      type: bool
    lan:
      description: SSH reachable on the LAN side.
      type: bool
    wan:
      description: SSH reachable on the WAN side.
      type: bool
    port:
      description: SSH port.
      type: int
    answering:
      description: Whether an SSH server answered on the port at the end of the run.
      type: bool
identity:
  description: What the unit says it is (empty in check mode on a factory unit, which cannot be read yet).
  returned: success
  type: dict
  contains:
    product_id:
      description: Product id, for example V(MTCDT-246A).
      type: str
    product_type:
      description: Lower-case product family, V(mtcdt) or V(mtcap).
      type: str
    serial:
      description: Serial number (C(deviceId)).
      type: str
    mac:
      description: Ethernet MAC address, lower case.
      type: str
    lora_eui:
      description: LoRa card EUI, lower case.
      type: str
    firmware:
      description: mPower firmware version.
      type: str
    hardware_version:
      description: Hardware version, for example V(MTCDT-0.1).
      type: str
  sample:
    product_id: MTCDT-246A
    product_type: mtcdt
    serial: "18250731"
    mac: "00:08:00:4a:26:f1"
    lora_eui: "00:80:00:00:a0:00:15:00"
    firmware: 5.3.8
    hardware_version: MTCDT-0.1
tls_fingerprint:
  description: SHA-256 of the unit's TLS certificate, lower-case hex; pin it with O(tls_fingerprint).
  returned: when the unit answered
  type: str
  sample: 064e43645319f7aabd2398765b1e6d283e004205f74fd264b593c20f716c9a6b
actions:
  description: What was done, or in check mode what would be done, in order.
  returned: always
  type: list
  elements: str
  sample: ["create admin user mtadm", "set ssh enabled=True, lan=True", "save configuration", "restart"]
seconds:
  description: How long the module took, in seconds; with O(gateways), each gateway's result in RV(gateways) has its own.
  returned: always
  type: float
  sample: 12.3
"""
