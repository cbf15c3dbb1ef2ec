#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
module: jumphost_register
short_description: Give a gateway its reverse-tunnel account and ports on the jumphost
version_added: 0.1.0
description:
  - Registers a gateway's SSH host key on the jumphost so that the gateway can open its reverse tunnel, and nothing
    else, and allocates its tunnel port and keepalive port.
  - The key line is confined with C(restrict,port-forwarding), C(permitlisten) for the gateway's own tunnel and
    keepalive ports, C(permitopen) for its own keepalive port (autossh loops its test data through it) and
    C(command=/usr/sbin/nologin), so the key gets no shell, no pty, no command and no other port.
  - In V(per_gateway) mode the gateway gets an account named after it in group C(<organisation>-gateways), with no
    password and C(/usr/sbin/nologin) as its shell, whose UID is the tunnel port; in V(shared) mode its key becomes
    one line of O(shared_account)'s C(authorized_keys), named by the key comment.
  - The same gateway with the same key changes nothing. The same gateway with a new key (a re-flashed unit) gets
    the new key and keeps its port; RV(rekeyed) says so.
  - Ports are allocated under an exclusive lock (O(lock_file)), so parallel registrations never share a port; a
    port something already listens on is skipped.
  - Lines of C(authorized_keys) that do not parse are kept untouched and reported in RV(malformed_lines).
  - With O(state=present), O(sshd_config) gets a C(Match Group <organisation>-gateways) block, before its first
    C(Match), that refuses the group's accounts what the key line cannot (forwarding Unix sockets, which
    C(permitlisten) and C(permitopen) do not cover) and what C(restrict) refuses already (agent and X11
    forwarding, ttys, tun devices, C(~/.ssh/rc)). The file is replaced only if C(sshd -t) accepts the result, sshd
    re-reads it (SIGHUP to its C(PidFile)) and the module waits until sshd listens again; C(sshd -T -C) must then
    show a real account of the group confined, or the module fails and names the setting.
  - O(state=absent) removes the gateway (its account, or its line), ends its tunnel and frees its port.
  - With O(gateways), registers a whole batch in one session under one lock (what provisioning does). Then the
    module fails only for what concerns the jumphost as a whole (organisation, port range, lock, sshd); a refusal that
    concerns one gateway (its name, its key, no port left) is that gateway's entry in RV(registrations), named in
    RV(failed_gateways), and the other gateways are registered.
author:
  - lorawan.conduit developers (@lorawan-conduit)
extends_documentation_fragment:
  - lorawan.conduit.attributes
  - lorawan.conduit.ledger
  - lorawan.conduit.jumphost
attributes:
  check_mode:
    support: full
    details: Returns the planned account, ports and key file; takes no lock and changes nothing.
  diff_mode:
    support: full
    details: Shows the change of C(authorized_keys) and of the sshd configuration.
  idempotent:
    support: full
options:
  gateway:
    description:
      - The gateway's name (its hostname, for example V(ttn-nyc-00-08-00-4a-26-f1)). In V(per_gateway) mode also the
        account name, so at most 32 characters.
      - One of O(gateway) and O(gateways) is required.
    type: str
  host_key:
    description:
      - The gateway's SSH host public key, the key its tunnel logs in with (C(/etc/ssh/ssh_host_rsa_key.pub)).
      - Required with O(state=present) and O(gateway).
    type: str
  gateways:
    description:
      - A batch of gateways, registered (or removed, with O(state=absent)) one after the other under one lock.
      - Each gateway at most once.
    type: list
    elements: dict
    suboptions:
      gateway:
        description: The gateway's name, as for O(gateway).
        type: str
        required: true
      host_key:
        description: Its SSH host public key, as for O(host_key); required with O(state=present).
        type: str
  state:
    description: Whether the gateway is registered.
    type: str
    choices: [present, absent]
    default: present
  lock_file:
    description:
      - The file locked while ports are allocated; every run on one jumphost must use the same.
      - Its folder must be one only root may change (the module makes the default's, mode C(0700)); the file is
        opened without following links and must be a regular file.
    type: path
    default: /run/lorawan-conduit/jumphost.lock
  lock_timeout:
    description: Seconds to wait for the lock.
    type: int
    default: 120
  sshd_config:
    description:
      - The configuration the jumphost's sshd runs with. With O(state=present) it gets the gateways' C(Match) block
        (see above), and its C(HostKey) files (as C(sshd -T) names them) are returned in RV(jumphost_host_keys),
        for the hand-over to pin.
      - A link is followed, so the file it points to is replaced and the link stays.
    type: path
    default: /etc/ssh/sshd_config
seealso:
  - module: lorawan.conduit.jumphost_tunnels
"""

EXAMPLES = r"""
- name: Register the gateway on the jumphost (today's layout, one account per gateway)
  lorawan.conduit.jumphost_register:
    gateway: "{{ inventory_hostname }}"
    host_key: "{{ gateway_facts_result.host_keys.rsa }}"
    organisation: ttn-nyc
  delegate_to: jumphost
  become: true
  register: registration

- name: Register it on one shared tunnel account instead
  lorawan.conduit.jumphost_register:
    gateway: "{{ inventory_hostname }}"
    host_key: "{{ gateway_facts_result.host_keys.rsa }}"
    organisation: ttn-nyc
    account_mode: shared
    shared_account: ttn
  delegate_to: jumphost
  become: true

- name: Register every gateway of the play in one session (run once, for the whole batch)
  lorawan.conduit.jumphost_register:
    gateways: "{{ ansible_play_hosts | map('extract', hostvars) | map(attribute='registration_entry') }}"
    organisation: ttn-nyc
  delegate_to: jumphost
  become: true
  run_once: true
  register: registrations

- name: Retire a gateway and free its port
  lorawan.conduit.jumphost_register:
    gateway: ttn-nyc-00-08-00-4a-26-f1
    organisation: ttn-nyc
    state: absent
  delegate_to: jumphost
  become: true
"""

RETURN = r"""
registrations:
  description:
    - With O(gateways), each gateway's result by name, with the keys the module returns for O(gateway) (RV(port),
      RV(user), RV(keepalive_port), ...) and RV(registrations.changed).
    - A gateway that was refused has RV(registrations.failed) and RV(registrations.msg) instead.
  returned: with O(gateways)
  type: dict
  sample:
    ttn-nyc-00-08-00-4a-26-f1: {changed: true, port: 20075, keepalive_port: 40150, user: ttn-nyc-00-08-00-4a-26-f1}
  contains:
    changed:
      description: Whether this gateway's registration changed.
      type: bool
    failed:
      description: Whether this gateway was refused.
      type: bool
    msg:
      description: Why it was refused, in words.
      type: str
jumphost_host_keys:
  description:
    - The public host keys the jumphost's sshd offers (O(sshd_config)), C(type base64) each - what
      M(lorawan.conduit.ttn_inventory) pins in the organisation's C(known_hosts) so that C(make ping) reaches the
      gateways with strict host key checking.
  returned: with O(state=present)
  type: list
  elements: str
  sample: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]
unreserved_ports:
  description:
    - The ports the registered gateways listen on at the jumphost (tunnel port, keepalive port and the one above)
      that lie in the jumphost's ephemeral port range (C(net.ipv4.ip_local_port_range)) and are not in
      C(net.ipv4.ip_local_reserved_ports). An outgoing connection on the jumphost may take such a port as its local
      port, and the gateway's autossh monitor (or tunnel) then cannot listen there; the module warns with the
      C(sysctl) line that reserves them.
    - Empty when the kernel does not say (no C(/proc/sys)).
  returned: always
  type: list
  elements: int
  sample: [40000, 40001]
reserved_ports:
  description: The jumphost's C(net.ipv4.ip_local_reserved_ports), as ranges of two ports (first, last).
  returned: always
  type: list
  elements: list
  sample: [[40000, 40299]]
failed_gateways:
  description: With O(gateways), the gateways that were refused.
  returned: with O(gateways)
  type: list
  elements: str
  sample: []
gateway:
  description: The gateway.
  returned: with O(gateway)
  type: str
  sample: ttn-nyc-00-08-00-4a-26-f1
mode:
  description: The account mode used.
  returned: always
  type: str
  sample: per_gateway
user:
  description:
    - The account the gateway's tunnel logs in as (C(ssh_tunnel_gateway_user_on_jumphost) in ttn-multitech-cm).
  returned: with O(gateway)
  type: str
  sample: ttn-nyc-00-08-00-4a-26-f1
port:
  description: The tunnel port on the jumphost (C(ssh_tunnel_remote_port)); in check mode the one that would be taken.
  returned: with O(gateway)
  type: int
  sample: 20075
keepalive_port:
  description: The keepalive base port (C(ssh_tunnel_keepalive_base_port)).
  returned: with O(gateway) and O(state=present)
  type: int
  sample: 40150
key_fingerprint:
  description: SHA256 fingerprint of the registered key.
  returned: with O(gateway) and O(state=present)
  type: str
  sample: SHA256:djODNr9O005mFSOXR2f5LRwgG5qwAxKikmbzH+D0bqM
authorized_keys:
  description: The key file that holds the gateway's line.
  returned: with O(gateway)
  type: str
  sample: /home/ttn-nyc-00-08-00-4a-26-f1/.ssh/authorized_keys
rekeyed:
  description: Whether a different key stood for the gateway and was replaced (a re-flashed unit); the port is kept.
  returned: with O(gateway)
  type: bool
previous_key_fingerprint:
  description: Fingerprint of the key that was replaced.
  returned: with O(gateway)
  type: str
  sample: null
actions:
  description: What was done, or in check mode what would be done (with O(gateways), to the sshd configuration).
  returned: always
  type: list
  elements: str
  sample: ["create account ttn-nyc-00-08-00-4a-26-f1 with UID 20075 (its tunnel port)"]
malformed_lines:
  description: Lines of the key file that do not parse; they were kept untouched.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The key file.
      type: str
    line:
      description: Line number.
      type: int
    reason:
      description: Why the line does not parse.
      type: str
sshd_config_changed:
  description: Whether the gateways' C(Match) block was added to (or restored in) O(sshd_config), and sshd told to
    re-read it.
  returned: always
  type: bool
  sample: false
seconds:
  description: How long the module took, in seconds, from the controller.
  returned: always
  type: float
  sample: 12.3
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._jumphost_accounts import (
    BatchRegistrar,
    JumphostSystem,
    Registrar,
    jumphost_argument_spec,
    unreserved_ports_warning,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import ledger_argument_spec


def main():
    argument_spec = jumphost_argument_spec()
    argument_spec.update(
        gateway=dict(type="str"),
        host_key=dict(type="str", no_log=False),
        gateways=dict(type="list", elements="dict", options=dict(
            gateway=dict(type="str", required=True),
            host_key=dict(type="str", no_log=False),
        )),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        lock_file=dict(type="path", default="/run/lorawan-conduit/jumphost.lock"),
        lock_timeout=dict(type="int", default=120),
        sshd_config=dict(type="path", default="/etc/ssh/sshd_config"),
        **ledger_argument_spec()  # filed on the controller by the action plugin
    )
    module = AnsibleModule(argument_spec=argument_spec, required_one_of=[("gateway", "gateways")],
                           mutually_exclusive=[("gateway", "gateways"), ("host_key", "gateways")],
                           required_if=[("state", "present", ["host_key", "gateways"], True)],
                           supports_check_mode=True)
    system = JumphostSystem(module.run_command)
    registrar = BatchRegistrar if module.params["gateways"] is not None else Registrar
    try:
        result = registrar(module.params, system, check_mode=module.check_mode).run()
    except StageError as exc:
        module.fail_json(msg=exc.message, stage=exc.stage, **exc.context)
    for warning in system.warnings:
        module.warn(warning)
    for line in result["malformed_lines"]:
        module.warn("%s line %d does not parse (%s); it was kept as it is"
                    % (line["path"], line["line"], line["reason"]))
    if result["unreserved_ports"]:
        module.warn(unreserved_ports_warning(result["unreserved_ports"], result["reserved_ports"]))
    sshd_diff = result.pop("sshd_config_diff", None)
    if module._diff and sshd_diff:  # pylint: disable=protected-access
        result["diff"] = ([result["diff"]] if "diff" in result else []) + [sshd_diff]
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff", None)
        for entry in result.get("registrations", {}).values():
            entry.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
