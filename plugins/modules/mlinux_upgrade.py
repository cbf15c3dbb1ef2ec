#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: mlinux_upgrade
short_description: Flash mLinux onto a MultiTech Conduit and wait until it runs
version_added: 0.1.0
description:
  - Checks the upgrade image on the controller (tar layout, C(model) member against the unit, every member's md5,
    optionally the sha256 of the whole file) before connecting or sending anything.
  - Checks the free space on the unit, uploads over SFTP (resuming after a dropped connection), verifies the upload
    by sha256, runs C(mlinux-firmware-upgrade) with sudo (the session cut by the reboot is expected), waits for the
    unit to go down and to come back as mLinux, and verifies C(/etc/mlinux-version).
  - A unit already running O(expected_version) is left alone and nothing is uploaded.
  - Cellular units refuse the conversion unless a hardware check in C(/etc/init.d/umountfs) is disabled first; this
    is done when O(cellular_fix=true) and the unit has a radio. The check's line
    (C(if ! mts_fw_check_hw_support_mp "$mpower_version" "$hw_version"; then)) becomes C(if false ; then)
    followed by the line as it was behind a C(#), as in the conversion runbook; the file is read back and must
    differ only there. A call of the check in any other form is refused before anything changes (disable it by hand, or
    set O(cellular_fix=false)). RV(cellular_fix) says which lines changed.
  - C(mlinux-firmware-upgrade) ends in one of three ways once it has staged the flash and asked for the reboot, exit
    status 0, exit status 1 with C(Reboot failed) (the reboot raced the command), or a cut session with no status.
    All three mean that the flash may have started; only what boots afterwards decides. An exit status without
    C(Rebooting) in the output is a refusal of the image.
  - Runs on the controller (use C(delegate_to) or a local connection).
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.ledger
  - lorawan.conduit.batch
attributes:
  check_mode:
    support: full
    details: Connects and reads the unit, checks the image and the free space, uploads nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - paramiko
options:
  name:
    description: The gateway's name, used in messages only.
    type: str
  address:
    description: Address of the unit before the flash.
    type: str
    required: true
  port:
    description: SSH port before the flash.
    type: int
    default: 22
  bind_interface:
    description: Bench NIC to bind every connection to (C(SO_BINDTODEVICE)); needs root.
    type: str
  username:
    description: User before the flash (the AEP admin user).
    type: str
    default: mtadm
  password:
    description: Password of O(username); also given to sudo on standard input.
    type: str
  key_file:
    description: Private key for O(username).
    type: path
  allow_agent:
    description: Offer the SSH agent's keys (off by default; a full agent exhausts the unit's MaxAuthTries).
    type: bool
    default: false
  look_for_keys:
    description: Offer the keys in C(~/.ssh).
    type: bool
    default: false
  host_key:
    description: The unit's SSH host public key before the flash (C(ssh-rsa AAAA...)); refused when it differs.
    type: str
  host_key_policy:
    description: V(pin) checks O(host_key) when given; V(ignore) skips every host key check.
    type: str
    choices: [pin, ignore]
    default: pin
  image:
    description: Upgrade image on the controller; C({product_type}) is replaced by V(mtcdt) or V(mtcap).
    type: path
    required: true
  image_checksum:
    description: Expected sha256 of the image, as a hex digest or the path of a C(sha256sum) checksum file.
    type: str
  product_type:
    description: The unit's product type; read from the unit when not given.
    type: str
  expected_version:
    description: The mLinux version the image installs (for example V(5.3.31)); verified after the flash.
    type: str
    required: true
  remote_path:
    description: Where the image goes on the unit (a tmpfs, cleared by the reboot).
    type: str
    default: /tmp/firmware.bin
  cellular_fix:
    description: On units with a radio, disable the C(umountfs) hardware check that blocks the conversion.
    type: bool
    default: true
  mlinux_address:
    description: Address of the unit after the flash (default O(address)).
    type: str
  mlinux_port:
    description: SSH port after the flash.
    type: int
    default: 22
  mlinux_bind_interface:
    description: NIC to bind to after the flash (default O(bind_interface)).
    type: str
  mlinux_username:
    description: User after the flash.
    type: str
    default: mtadm
  mlinux_password:
    description: Password of O(mlinux_username) on the new mLinux image.
    type: str
  mlinux_key_file:
    description: Private key for O(mlinux_username).
    type: path
  upload_retries:
    description: How many times a dropped upload is resumed.
    type: int
    default: 3
  connect_timeout:
    description: Seconds for one SSH connection attempt.
    type: float
    default: 10
  down_timeout:
    description: Seconds for the unit to go down once the upgrade has started.
    type: int
    default: 120
  flash_timeout:
    description: Seconds for the unit to come back as mLinux after going down.
    type: int
    default: 900
seealso:
  - module: lorawan.conduit.aep_commission
"""

EXAMPLES = r"""
- name: Flash the TTNI mLinux image onto every commissioned unit
  lorawan.conduit.mlinux_upgrade:
    name: "{{ inventory_hostname }}"
    address: "{{ conduit_address }}"
    bind_interface: "{{ bench_port }}"
    password: "{{ vault_aep_admin_password }}"
    image: /srv/images/ttni-base-image-{product_type}-upgrade.bin
    image_checksum: /srv/images/SHA256SUMS
    expected_version: 5.3.31
    mlinux_password: "{{ vault_mlinux_password }}"
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
flashed:
  description: Whether the unit was flashed in this run.
  returned: success
  type: bool
old_version:
  description: mLinux version before the run (null on an AEP unit).
  returned: success
  type: str
  sample: null
new_version:
  description: mLinux version the unit runs at the end (null in check mode when a flash is planned).
  returned: success
  type: str
  sample: 5.3.31
image:
  description: The image that was checked (null when the unit was already on the version).
  returned: success
  type: dict
  contains:
    path:
      description: Image file.
      type: str
    size:
      description: Size in bytes.
      type: int
    sha256:
      description: sha256 of the file.
      type: str
    model:
      description: The model the image is for.
      type: str
    members:
      description: Payload members whose md5 was verified.
      type: list
      elements: str
cellular_fix:
  description: The lines of C(/etc/init.d/umountfs) the cellular fix changed (planned ones in check mode); empty
    when the check was already disabled.
  returned: on a unit with a radio when O(cellular_fix=true)
  type: list
  elements: dict
  contains:
    line:
      description: Line number.
      type: int
    before:
      description: The line before the fix.
      type: str
    after:
      description: The line after the fix.
      type: str
upload:
  description: Transfer figures.
  returned: when uploaded
  type: dict
  contains:
    seconds:
      description: Seconds the upload took.
      type: float
    bytes:
      description: Bytes sent.
      type: int
    mb_per_s:
      description: Throughput in MB/s.
      type: float
    attempts:
      description: Attempts used (more than 1 after a dropped connection).
      type: int
host_key:
  description: The unit's SSH host key at the end of the run (after a flash, the new one).
  returned: success
  type: str
address:
  description: The address the unit answers at at the end of the run.
  returned: unless check mode planned a flash
  type: str
free_bytes:
  description: Free bytes where the image goes, before the upload.
  returned: when a flash was planned
  type: int
elapsed:
  description: Seconds the whole run took.
  returned: success
  type: float
actions:
  description: What was done, or in check mode what would be done.
  returned: always
  type: list
  elements: str
seconds:
  description: How long the module took, in seconds; with O(gateways), each gateway's result in RV(gateways) has its own.
  returned: always
  type: float
  sample: 12.3
"""
