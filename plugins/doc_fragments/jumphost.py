# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


class ModuleDocFragment:
    # How an organisation's gateways are laid out on the jumphost.
    DOCUMENTATION = r"""
options:
  organisation:
    description:
      - The organisation prefix, for example V(ttn-nyc). Gateway accounts belong to the group C(<organisation>-gateways).
    type: str
    required: true
    aliases: [org]
  account_mode:
    description:
      - V(per_gateway) is the layout of today's jumphosts, one account per gateway whose UID is its tunnel port.
      - V(shared) puts every gateway's key on one account, O(shared_account); the ports each key may listen on,
        written into its line, are the allocation.
    type: str
    choices: [per_gateway, shared]
    default: per_gateway
  shared_account:
    description: The tunnel account in V(shared) mode (default C(<organisation>-tunnel)).
    type: str
  tunnel_port_min:
    description:
      - The lowest tunnel port (in V(per_gateway) mode also the lowest UID; today's jumphosts use 20000).
    type: int
    default: 20000
  tunnel_port_max:
    description:
      - The highest tunnel port. The keepalive formula may stop earlier, see O(keepalive_port_base).
    type: int
    default: 32767
  keepalive_port_base:
    description:
      - The keepalive (autossh C(-M)) port of a gateway is O(keepalive_port_base) + (tunnel port -
        O(tunnel_port_min)) * 2; autossh uses that port and the next. A tunnel port whose keepalive pair would pass
        65535 is never handed out.
    type: int
    default: 40000
notes:
  - Runs on the jumphost, as root (C(become)). Needs C(useradd), C(groupadd), C(usermod) and C(userdel) (shadow-utils)
    and Linux C(/proc).
"""
