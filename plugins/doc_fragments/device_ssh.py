# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


class ModuleDocFragment:
    # How to log in to an mLinux unit over SSH.
    DOCUMENTATION = r"""
options:
  address:
    description: Address of the unit.
    type: str
    required: true
  port:
    description: SSH port of the unit.
    type: int
    default: 22
  bind_interface:
    description: Bench NIC to bind every connection to (C(SO_BINDTODEVICE)); needs root.
    type: str
  username:
    description: User to log in as; anything but V(root) uses sudo, with O(password) on standard input.
    type: str
    default: mtadm
  password:
    description: Password of O(username), also given to sudo.
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
  connect_timeout:
    description: Seconds for one SSH connection attempt.
    type: float
    default: 10
requirements:
  - paramiko
"""
