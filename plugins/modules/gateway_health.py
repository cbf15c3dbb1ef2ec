#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: gateway_health
short_description: Check a provisioned Conduit's health against its ledger record, remediate when asked
version_added: 0.1.0
description:
  - Reaches the gateway as the other device modules do (in the field through the jumphost and its tunnel, see
    O(jump_host)), its host key pinned to the ledger's, and reads it in one round trip as root; then checks that it
    answers, that its host key is the pinned one, its tunnel as the jumphost listed it (O(tunnel)), its mLinux
    version, its LoRa EUI, that its packet forwarder runs (ttn-multitech-cm's C(ttn-pkt-forwarder) or
    C(lora-basic-station), by its pid file; a gateway where none is installed yet is not unhealthy), its clock,
    the free space of C(/) and C(/var/config), and its uptime.
  - With O(remediate=true), what a restart can fix is fixed a step at a time, each followed by the checks again, in
    this order; restart the forwarder, set the clock (C(ntpdate)), restart the tunnel (when its keepalive port does not listen);
    then, if only such problems are left, reboot and wait (O(reboot_timeout)) until it answers through its tunnel
    again. A changed host key, version or EUI, a full disk or a tunnel that is not up are never acted on.
  - A gateway still unhealthy at the end fails, with every problem in words, and is marked C(needs_attention) in its
    ledger record (the reason and since when); later runs leave it alone (its result has C(earlier)) until an
    operator clears the mark with O(clear_attention=true). The conduits inventory puts marked gateways in its group
    C(needs_attention).
  - A jumphost that cannot be used fails the gateways behind it with its words and marks none of them.
  - Every value the unit answers is checked against its strict form before it is compared or shown.
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
    details: Reads the unit and checks it; remediates nothing, marks and clears nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A healthy gateway is left as it is; remediation and marks are changes.
options:
  name:
    description: The gateway's name; its ledger record is C(<ledger_dir>/<name>.yml), which O(ledger_dir) must give.
    type: str
    required: true
  expected_mlinux_version:
    description:
      - The mLinux version the gateway should run (the organisation's host_vars C(mlinux_version), which make apply
        flashes to). Default the version its ledger record holds.
    type: str
  tunnel:
    description:
      - The gateway's tunnel as M(lorawan.conduit.jumphost_tunnels) lists it (its entry of
        RV(lorawan.conduit.jumphost_tunnels#module:tunnels), or C(registered=false) for a gateway the jumphost has no
        registration of). Unhealthy when its port does not listen there, is held by another account, or its
        keepalive port does not listen. Not checked when not given.
    type: dict
  clock_tolerance:
    description: Seconds the gateway's clock may be off the controller's.
    type: int
    default: 60
  min_free_mib:
    description: MiB that must be free on C(/) and on C(/var/config).
    type: int
    default: 2
  remediate:
    description: Fix what a restart can fix, a step at a time (see the description).
    type: bool
    default: false
  forwarder_settle:
    description: Seconds after a forwarder restart before it is checked again (one that falls over does so in them).
    type: int
    default: 10
  ntp_server:
    description: Time server C(ntpdate) sets the clock from.
    type: str
    default: pool.ntp.org
  reboot_timeout:
    description: Seconds to wait for the gateway to answer through its tunnel again after a reboot or a tunnel restart.
    type: int
    default: 300
  clear_attention:
    description: Clear the gateway's C(needs_attention) mark (once it was looked at) and check it again.
    type: bool
    default: false
seealso:
  - module: lorawan.conduit.gateway_facts
  - module: lorawan.conduit.jumphost_tunnels
"""

EXAMPLES = r"""
- name: Check every gateway through the jumphost, one task for the whole fleet
  lorawan.conduit.gateway_health:
    gateways:
      - name: ttn-example-00-08-00-4a-26-f1
        port: 20001
      - name: ttn-example-00-08-00-4a-26-f2
        port: 20002
    address: 127.0.0.1
    password: "{{ vault_mlinux_password }}"
    jump_host: jumphost.example.org
    jump_user: ops
    jump_key_file: ~/.ssh/id_ed25519
    jump_host_keys: "{{ jumphost_host_keys }}"
    ledger_dir: "{{ inventory_dir | dirname }}/ledger"
  delegate_to: localhost
  run_once: true
  register: health

- name: Check one gateway again after someone looked at it, and fix what a restart fixes
  lorawan.conduit.gateway_health:
    name: ttn-example-00-08-00-4a-26-f1
    address: 127.0.0.1
    port: 20001
    password: "{{ vault_mlinux_password }}"
    jump_host: jumphost.example.org
    jump_user: ops
    jump_host_keys: "{{ jumphost_host_keys }}"
    ledger_dir: "{{ inventory_dir | dirname }}/ledger"
    clear_attention: true
    remediate: true
  delegate_to: localhost
"""

RETURN = r"""
gateways:
  description: With O(gateways), each gateway's result by name, with the keys returned for one gateway (and C(failed), C(msg) when it is unhealthy).
  returned: with O(gateways)
  type: dict
failed_gateways:
  description: With O(gateways), the gateways that are unhealthy, could not be checked, or were refused.
  returned: with O(gateways)
  type: list
  elements: str
healthy:
  description: Whether every check passed.
  returned: always
  type: bool
checks:
  description:
    - Each check by name (C(reachable), C(host_key), C(tunnel), C(mlinux_version), C(lora_eui), C(forwarder), C(clock),
      C(free_space), C(uptime)), as the gateway was at the end; those the unit was needed for are missing when it could
      not be reached.
  returned: always
  type: dict
  contains:
    ok:
      description: Whether it passed.
      type: bool
    value:
      description: What was seen (the version, the EUI, the forwarder's init script, seconds the clock is off, free KiB by mount, seconds up).
      type: raw
    detail:
      description: The check in words.
      type: str
    remediable:
      description: Whether a restart or a reboot may fix it.
      type: bool
remediation:
  description: The remediation steps taken, in order.
  returned: always
  type: list
  elements: str
  sample: [restart the forwarder, reboot]
needs_attention:
  description: The mark in the ledger (C(reason), C(since)), null when it is healthy.
  returned: always
  type: dict
earlier:
  description: True when the gateway was left alone as an earlier run marked it C(needs_attention).
  returned: when marked
  type: bool
seconds:
  description: How long the module took, in seconds; with O(gateways), each gateway's result in RV(gateways) has its own.
  returned: always
  type: float
  sample: 1.4
"""
