# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
name: conduits
short_description: MultiTech Conduits on bench ports, provisioning LANs and in the provisioning ledger
version_added: 0.1.0
author:
  - lorawan.conduit developers (@lorawan-conduit)
description:
  - Finds Conduits and gives each its state (V(aep_uncommissioned), V(aep), V(mlinux), V(unreachable)), its
    connection variables (C(conduit_address), C(conduit_https_port), C(conduit_ssh_port),
    C(conduit_bind_interface)) and what is known of its identity.
  - "Bench ports: every factory unit answers at the same address (O(bench_address)); each bench NIC is probed with
    sockets bound to it (C(SO_BINDTODEVICE), needs root), and the unit's MAC comes from that NIC's neighbour table."
  - Provisioning LANs (O(networks)) are probed concurrently; an address is kept when its MAC has the MultiTech OUI
    C(00:08:00) or when it answers the mPower API like a Conduit.
  - Gateways in the ledger (O(ledger_dir)) are always listed; those the ledger has seen through every stage (the
    last, C(accept), is make ping's path reaching the gateway) go to group C(provisioned), every other unit to
    C(new_gateways).
  - A gateway whose ledger record cannot be read (not YAML, another gateway's, an unknown schema) is set aside
    alone, whatever answers at its address - state V(refused), group C(refused), in both C(new_gateways) and
    C(provisioned) so that every run meets it - with the file, the line and what to do in C(conduit_refused);
    provisioning fails it at once with those words. The other gateways are listed as usual.
  - "Host names follow the organisation's convention, O(name_prefix) + MAC with dashes, when the MAC is known;
    otherwise the ledger's name, else the NIC or the address."
  - For a gateway in the ledger, C(conduit_jumphost) is its tunnel as the ledger records it (C(host), C(port),
    C(user), C(tunnel_port), C(keepalive_port), C(host_keys)), what the day-two playbooks reach it through.
  - "Groups: C(new_gateways), C(provisioned), one per state (C(aep) holds both AEP states), one per product type
    when known (C(mtcdt), C(mtcap)), C(needs_attention) for the gateways the health playbook marked (the reason in
    C(conduit_needs_attention)), plus whatever O(keyed_groups) and O(groups) make."
  - The configuration file must be named C(*.conduits.yml) or C(*.conduits.yaml).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [lorawan.conduit.conduits]
  bench_ports:
    description:
      - Bench NICs, by name or glob (V(enx*)), or by MAC glob as V(mac:00:e0:4c:*).
    type: list
    elements: str
    default: []
  bench_address:
    description: The address every unit on a bench port answers at.
    type: str
    default: 192.168.2.1
  networks:
    description: Provisioning LANs to sweep, in CIDR notation.
    type: list
    elements: str
    default: []
  addresses:
    description:
      - Single units to probe and keep whatever their MAC (an mLinux unit on a LAN where the neighbour table cannot
        tell, for example).
    type: list
    elements: str
    default: []
  ledger_dir:
    description: The provisioning ledger folder; a relative path is taken from the folder of this configuration file.
    type: str
  dhcp_leases:
    description:
      - DHCP lease files of the provisioning LAN to take units from (dnsmasq's lease file or ISC dhcpd's
        C(dhcpd.leases), told apart by their content; a relative path is taken from the folder of this configuration
        file). Each current lease of a MultiTech MAC (C(00:08:00)) is a unit at its leased address, probed like the
        rest and listed even when silent (V(unreachable)); its MAC is the lease's. C(conduit_lease) holds its address,
        expiry and file.
      - With O(ledger_dir), each sighting is recorded in C(<ledger_dir>/sightings/<mac>.yml), one record per MAC (its
        first and last sighting, its latest address and lease), updated on every run.
    type: list
    elements: str
    default: []
  name_prefix:
    description: The organisation's host name prefix, for example V(ttn-nyc-).
    type: str
    default: ""
  https_port:
    description: The mPower HTTPS port probed.
    type: int
    default: 443
  ssh_port:
    description: The SSH port probed.
    type: int
    default: 22
  timeout:
    description: Seconds one probe may take.
    type: float
    default: 1.0
  concurrency:
    description: How many connections may be open at once.
    type: int
    default: 256
"""

EXAMPLES = r"""
# provisioning/bench.conduits.yml
plugin: lorawan.conduit.conduits
bench_ports: ["enx*"]
networks: [10.20.0.0/24]
ledger_dir: ledger
name_prefix: ttn-nyc-
keyed_groups:
  - key: conduit_state
    prefix: state
"""

import os
import sys

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

try:
    import netaddr
except ImportError:
    HAS_NETADDR = False
else:
    HAS_NETADDR = True

from ansible_collections.lorawan.conduit.plugins.module_utils._dhcp_leases import (
    LeaseFileError,
    read_leases,
    record_sighting,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._discovery import (
    MULTITECH_OUI,
    Target,
    address_name,
    commissioned,
    discover,
    gateway_name,
    interfaces,
)


def _ledger_records(directory):
    """``(records, refused)``: each gateway's ledger record, and for each record that cannot be read, why (its file
    and line): one broken file sets its own gateway aside, never the batch."""
    from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
    from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger
    if not directory or not os.path.isdir(directory):
        return {}, {}
    ledger = Ledger(directory)
    records, refused = {}, {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".yml") and not name.startswith("."):
            gateway = name[:-4]
            try:
                records[gateway] = ledger.read(gateway)
            except StageError as exc:
                refused[gateway] = exc.message
            except (IOError, OSError) as exc:
                refused[gateway] = "%s: the ledger file %s cannot be read (%s); fix or remove it" % (
                    gateway, os.path.join(directory, name), exc)
    return records, refused


def finished(stages):
    """Whether a gateway has been through every stage: make ping's path reached it (accept). A gateway in the
    organisation's inventory whose accept stage never ran (the run was killed in between) is not."""
    return (stages or {}).get("accept") == "done"


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "lorawan.conduit.conduits"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and \
            path.endswith(("conduits.yml", "conduits.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        hosts = None
        if use_cache:
            try:
                hosts = self._cache[cache_key]
            except KeyError:
                hosts = None
        if hosts is None:
            hosts = self._discover(os.path.dirname(path))
            if self.get_option("cache"):
                self._cache[cache_key] = hosts
        self._populate(hosts)

    def _targets(self):
        targets = []
        bench = self.get_option("bench_ports")
        if bench:
            for nic in interfaces(bench):
                targets.append(Target(self.get_option("bench_address"), interface=nic, source="bench",
                                      https_port=self.get_option("https_port"), ssh_port=self.get_option("ssh_port")))
        networks = self.get_option("networks")
        if networks and not HAS_NETADDR:
            raise AnsibleParserError("the conduits inventory needs the Python library netaddr to sweep networks")
        for network in networks:
            try:
                cidr = netaddr.IPNetwork(network)
            except (netaddr.AddrFormatError, ValueError) as exc:
                raise AnsibleParserError("conduits inventory: %r is not a network in CIDR notation (%s)"
                                         % (network, exc))
            hosts = list(cidr.iter_hosts()) if cidr.size > 2 else list(cidr)
            targets.extend(Target(str(address), source="lan", https_port=self.get_option("https_port"),
                                  ssh_port=self.get_option("ssh_port")) for address in hosts)
        targets.extend(Target(address, source="listed", https_port=self.get_option("https_port"),
                              ssh_port=self.get_option("ssh_port")) for address in self.get_option("addresses"))
        return targets

    def _discover(self, base):
        ledger_dir = self.get_option("ledger_dir")
        if ledger_dir:
            ledger_dir = os.path.normpath(os.path.join(base, os.path.expanduser(ledger_dir)))
        records, refused = _ledger_records(ledger_dir)
        targets = dict((target.key(), target) for target in self._targets())
        by_mac = dict(((record.get("identity") or {}).get("mac"), name) for name, record in records.items())
        leases = self._leases(base)
        for lease in leases.values():
            target = Target(lease["address"], source="dhcp", https_port=self.get_option("https_port"),
                            ssh_port=self.get_option("ssh_port"), name=by_mac.get(lease["mac"]), mac=lease["mac"])
            targets[target.key()] = target
        for name, record in records.items():
            reach = record.get("reach") or {}
            if reach.get("address"):  # where the unit answered last; it is probed like the rest
                target = Target(reach["address"], interface=reach.get("bind_interface") or None, source="ledger",
                                https_port=self.get_option("https_port"), ssh_port=reach.get("ssh_port") or 22,
                                name=name)
                targets[target.key()] = target
        found = discover(list(targets.values()), commissioned, timeout=self.get_option("timeout"),
                         limit=self.get_option("concurrency"))
        prefix = self.get_option("name_prefix")
        hosts = {}
        for unit in found:
            target, mac = unit["target"], unit["mac"]
            name = target.name or (by_mac.get(mac) if mac else None)
            if name is None:
                name = gateway_name(prefix, mac) if mac else address_name(prefix, target.address, target.interface)
            hosts[name] = {"conduit_state": unit["state"], "conduit_address": target.address,
                           "conduit_https_port": target.https_port, "conduit_ssh_port": target.ssh_port,
                           "conduit_bind_interface": target.interface or "", "conduit_mac": mac,
                           "conduit_source": target.source,
                           "conduit_lease": dict((key, value) for key, value in leases[mac].items() if key != "mac")
                           if target.source == "dhcp" and mac in leases else {},
                           # the stages reach the unit themselves; Ansible runs them on this controller
                           "ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        for name, record in records.items():
            entry = hosts.setdefault(name, {"conduit_state": "unreachable", "conduit_source": "ledger",
                                            "ansible_connection": "local", "ansible_python_interpreter": sys.executable})
            identity = record.get("identity") or {}
            entry.update(conduit_identity=identity, conduit_mac=identity.get("mac") or entry.get("conduit_mac"),
                         conduit_product_type=identity.get("product_type"),
                         conduit_jumphost=record.get("jumphost") or {},
                         conduit_needs_attention=(record.get("needs_attention") or {}).get("reason") or "",
                         conduit_stages=dict((stage, (value or {}).get("status"))
                                             for stage, value in (record.get("stages") or {}).items()
                                             if isinstance(value, dict)))
        for name, why in refused.items():
            entry = hosts.setdefault(name, {"conduit_source": "ledger", "ansible_connection": "local",
                                            "ansible_python_interpreter": sys.executable})
            entry.update(conduit_state="refused", conduit_refused=why)
        return hosts

    def _leases(self, base):
        """``{mac: lease}`` from every lease file of O(dhcp_leases), MultiTech MACs only, each sighting recorded."""
        leases = {}
        for path in self.get_option("dhcp_leases"):
            path = os.path.normpath(os.path.join(base, os.path.expanduser(path)))
            try:
                leases.update(read_leases(path, oui=MULTITECH_OUI))
            except LeaseFileError as exc:
                raise AnsibleParserError("conduits inventory: %s; fix dhcp_leases in the configuration" % exc)
        ledger_dir = self.get_option("ledger_dir")
        if ledger_dir:
            ledger_dir = os.path.normpath(os.path.join(base, os.path.expanduser(ledger_dir)))
            for lease in leases.values():
                try:
                    record_sighting(ledger_dir, lease, "dhcp:" + lease["file"])
                except (IOError, OSError) as exc:
                    self.display.warning("conduits inventory: the sighting of %s could not be recorded in %s (%s)"
                                         % (lease["mac"], ledger_dir, exc))
        return leases

    def _populate(self, hosts):
        strict = self.get_option("strict")
        for group in ("new_gateways", "provisioned", "aep", "mlinux", "unreachable", "refused", "needs_attention"):
            self.inventory.add_group(group)
        for name, variables in sorted(hosts.items()):
            self.inventory.add_host(name)
            for key, value in variables.items():
                self.inventory.set_variable(name, key, value)
            state = variables["conduit_state"]
            self.inventory.add_child("aep" if state.startswith("aep") else state, name)
            if state == "refused":  # how far it got is in the record that cannot be read: every run says so
                self.inventory.add_child("new_gateways", name)
                self.inventory.add_child("provisioned", name)
            else:
                self.inventory.add_child("provisioned" if finished(variables.get("conduit_stages"))
                                         else "new_gateways", name)
            if variables.get("conduit_needs_attention"):  # health.yml found it unhealthy; an operator clears it
                self.inventory.add_child("needs_attention", name)
            if variables.get("conduit_product_type"):
                self.inventory.add_group(variables["conduit_product_type"])
                self.inventory.add_child(variables["conduit_product_type"], name)
            self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict)
