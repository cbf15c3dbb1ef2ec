# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


class ModuleDocFragment:
    # How to reach a unit's mPower (AEP) HTTPS API.
    DOCUMENTATION = r"""
options:
  name:
    description:
      - The gateway's name, used in messages only (for example the inventory host name).
    type: str
  address:
    description:
      - Address of the unit. Factory units answer at C(192.168.2.1).
    type: str
    required: true
  https_port:
    description: Port of the mPower HTTPS API.
    type: int
    default: 443
  bind_interface:
    description:
      - Network interface to send every packet through (C(SO_BINDTODEVICE)), for bench ports where every
        unit answers at the same address. Needs C(CAP_NET_RAW) (root).
    type: str
  validate_certs:
    description:
      - Check the unit's certificate against O(ca_path) or the system's CAs. Units ship a self-signed
        certificate, so this is off by default; pin it with O(tls_fingerprint) instead.
    type: bool
    default: false
  ca_path:
    description: CA bundle to validate the unit's certificate with when O(validate_certs=true).
    type: path
  tls_fingerprint:
    description:
      - SHA-256 fingerprint of the unit's certificate (hex, colons allowed). When given, a unit presenting
        any other certificate is refused.
    type: str
  request_timeout:
    description: Seconds to wait for one HTTP answer.
    type: float
    default: 10
"""
