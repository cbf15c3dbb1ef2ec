#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: gateway_tunnel
short_description: Install root's keys and the reverse SSH tunnel to the jumphost on an mLinux Conduit
version_added: 0.1.0
description:
  - Installs O(authorized_keys) for root in C(/var/config/home/root/.ssh) (700/600), which survives firmware
    upgrades, and links C(/home/root/.ssh) there; an existing real C(/home/root/.ssh) is moved in, its keys and
    files kept. Keys already in the file stay.
  - Writes the tunnel the way ttn-multitech-cm's C(ssh_tunnel) role does, so that C(make apply) finds its own layout
    - C(/var/config/ssh_tunnel.default) and C(/var/config/init.d/ssh_tunnel), linked from C(/etc/default) and
    C(/etc/init.d), registered with C(update-rc.d ssh_tunnel defaults 10 50).
  - Starts the tunnel, or restarts it when its configuration changed; the restart runs detached through the init
    script's C(do_restart), so a session riding on the tunnel survives it.
  - Optionally sets the clock first (O(time_sync)); when no server answers it warns and goes on.
  - With O(ledger_dir) the connection is pinned to the host keys M(lorawan.conduit.gateway_facts) recorded, and
    the stage and the jumphost allocation are recorded in the ledger.
  - Whether the tunnel then listens on the jumphost is checked there, with M(lorawan.conduit.jumphost_tunnels) and
    O(lorawan.conduit.jumphost_tunnels#module:wait_timeout) (the C(gateway_tunnel) role does that).
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
    details: Reads the unit and returns the planned actions; changes nothing on the unit or in the ledger.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description: The gateway's name (its ledger record, and messages).
    type: str
    required: true
  host_key:
    description: The unit's host key to pin when no ledger is used.
    type: str
  authorized_keys:
    description: Public keys for root (the provisioning key and the operators' keys); at least one.
    type: list
    elements: str
    required: true
  remote_host:
    description: The jumphost as the unit reaches it (C(REMOTE_HOST), C(ssh_tunnel_remote_host)).
    type: str
    required: true
  remote_ssh_port:
    description: The jumphost's SSH port (C(SSH_PORT), C(ssh_tunnel_ssh_port)).
    type: int
    default: 22
  remote_user:
    description: The account on the jumphost (C(REMOTE_USER)), as M(lorawan.conduit.jumphost_register) returned it.
    type: str
    required: true
  remote_port:
    description: The tunnel port on the jumphost (C(REMOTE_PORT), C(ssh_tunnel_remote_port)).
    type: int
    required: true
  keepalive_port:
    description: The autossh C(-M) port (C(ssh_tunnel_keepalive_base_port)).
    type: int
    required: true
  local_port:
    description: The unit's port the tunnel leads to.
    type: int
    default: 22
  daemon:
    description: The tunnel program.
    type: path
    default: /usr/bin/autossh
  ssh_key:
    description: The private key the tunnel logs in with (the unit's RSA host key, registered on the jumphost).
    type: path
    default: /etc/ssh/ssh_host_rsa_key
  jumphost_host_keys:
    description:
      - The jumphost's public host keys (C(type base64) each), as
        RV(lorawan.conduit.jumphost_register#module:jumphost_host_keys) returns them. They become the only entries
        for O(remote_host) (with O(remote_ssh_port)) in root's C(known_hosts), under C(/var/config) where firmware
        upgrades keep it; the other lines stay as they are.
      - The tunnel runs with ttn-multitech-cm's C(StrictHostKeyChecking=no), which C(make apply) writes back; with
        the key pinned, OpenSSH refuses every forwarding to a host that shows another key, so an impostor on the
        jumphost's address gets no tunnel. Without a pin the unit would take the first key it is shown.
    type: list
    elements: str
    default: []
  init_script_source:
    description:
      - A file on the controller to install as C(/var/config/init.d/ssh_tunnel), byte for byte, instead of the
        collection's own script - ttn-multitech-cm's C(roles/conduit/files/ssh_tunnel.initd) from the operator's
        checkout, so that C(make apply) finds nothing to change there (its restart handler reboots the gateway).
      - Without it the collection's own script is installed and the result warns that C(make apply) will replace it.
    type: path
  time_sync:
    description: Set the clock with C(ntpdate) before (re)starting the tunnel.
    type: bool
    default: true
  ntp_server:
    description: The time server for O(time_sync).
    type: str
    default: pool.ntp.org
  restart_stalled:
    description:
      - Restart a running tunnel whose C(autossh) has no C(ssh) - after failed connections it waits ever longer
        before it tries again, up to C(AUTOSSH_POLL) (ten minutes by default), so a tunnel stays down long after the
        jumphost is back.
      - Set it when the jumphost is known to answer (the role does, the registration has just reached it); where it
        does not, every run would restart a tunnel that cannot connect.
    type: bool
    default: false
seealso:
  - module: lorawan.conduit.gateway_facts
  - module: lorawan.conduit.jumphost_register
  - module: lorawan.conduit.jumphost_tunnels
"""

EXAMPLES = r"""
- name: Install the keys and the tunnel
  lorawan.conduit.gateway_tunnel:
    name: "{{ inventory_hostname }}"
    address: "{{ conduit_address }}"
    password: "{{ vault_mlinux_password }}"
    ledger_dir: "{{ inventory_dir | dirname }}/ledger"
    authorized_keys:
      - "{{ lookup('ansible.builtin.file', 'keys/provisioning.pub') }}"
    remote_host: jumphost.example.org
    remote_user: "{{ jumphost_register_result.user }}"
    remote_port: "{{ jumphost_register_result.port }}"
    keepalive_port: "{{ jumphost_register_result.keepalive_port }}"
    jumphost_host_keys: "{{ jumphost_register_result.jumphost_host_keys }}"
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
actions:
  description: What was done, or in check mode what would be done.
  returned: always
  type: list
  elements: str
tunnel:
  description: The tunnel configuration in place.
  returned: success
  type: dict
  contains:
    remote_host:
      description: The jumphost.
      type: str
    remote_user:
      description: The account on the jumphost.
      type: str
    remote_port:
      description: The tunnel port on the jumphost.
      type: int
    keepalive_port:
      description: The keepalive port.
      type: int
ledger:
  description: The ledger record's path.
  returned: when O(ledger_dir) is given
  type: str
seconds:
  description: How long the module took, in seconds; with O(gateways), each gateway's result in RV(gateways) has its own.
  returned: always
  type: float
  sample: 12.3
"""
