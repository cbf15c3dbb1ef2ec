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
    description: Seconds for one SSH connection attempt (to the jumphost, and to the unit through it).
    type: float
    default: 10
  jump_host:
    description:
      - Reach the unit through this jumphost (address or name), as a gateway in the field is reached; O(address) and
        O(port) are then the unit's tunnel end as the jumphost sees it (V(127.0.0.1) and its tunnel port).
      - One SSH connection to the jumphost serves every unit a task reaches through it (a batch of any size is one
        login there); each unit is a C(direct-tcpip) channel of it, and its own host key is checked as always.
      - With O(bind_interface), the connection to the jumphost is bound to that NIC.
    type: str
  jump_port:
    description: SSH port of O(jump_host).
    type: int
    default: 22
  jump_user:
    description: Account on O(jump_host) (it must be allowed to forward to the tunnel ports); required with it.
    type: str
  jump_key_file:
    description: Private key for O(jump_user).
    type: path
  jump_allow_agent:
    description: Offer the SSH agent's keys to O(jump_host).
    type: bool
    default: false
  jump_host_keys:
    description:
      - The host keys O(jump_host)'s sshd may offer (C(type base64) each); required with it, and a jumphost offering
        another is refused before any login. The ledger records them for each gateway under C(jumphost.host_keys).
    type: list
    elements: str
    default: []
requirements:
  - paramiko
"""
