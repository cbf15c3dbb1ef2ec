# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every tunnel on the jumphost held against the ledger and the organisation's inventory (``tunnel_audit``).

Three accounts of the same tunnels: what the jumphost has registered (``jumphost_tunnels``, all of the
organisation's), what the ledger recorded for each gateway it provisioned, and what the organisation's
ttn-multitech-cm inventory tells ``make apply`` (each host's ``ssh_tunnel_remote_port``, as ``ansible-inventory``
reads the inventory). Where they disagree, a finding in words; where the fix is safe (the jumphost holds another key
than the ledger pinned for a gateway: put the ledger's back, its port kept), the fix, for the playbook to apply.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import os
import subprocess
import sys

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger
from ansible_collections.lorawan.conduit.plugins.module_utils._report import markdown_document, text_table
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import KeyFormatError, key_fingerprint
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import StageModule
from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_acceptance import ansible_tool

STAGE = "tunnels"
FINDINGS = ("orphan account", "not listening", "not registered", "key differs", "port clash", "not in inventory",
            "no tunnel port")


def _fingerprint(key):
    try:
        return key_fingerprint(key) if key else None
    except KeyFormatError:
        return None


def inventory_ports(inventory):
    """``{host: its ssh_tunnel_remote_port or None}`` for every host of the ``conduits`` group of the organisation's
    inventory, as ``ansible-inventory --list`` reads it (host_vars in any of their forms, group_vars, vaults left
    closed)."""
    command = ansible_tool("ansible-inventory")
    if command is None:
        raise StageError("no ansible-inventory beside %s or on PATH to read the organisation's inventory %s with"
                         % (sys.executable, inventory), STAGE)
    try:
        done = subprocess.run([command, "-i", inventory, "--list"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False, timeout=300)
    except OSError as exc:
        raise StageError("cannot run ansible-inventory to read the organisation's inventory %s (%s)"
                         % (inventory, exc), STAGE)
    if done.returncode != 0:
        raise StageError("ansible-inventory cannot read the organisation's inventory %s: %s"
                         % (inventory, done.stderr.decode("utf-8", "replace").strip()[-600:]), STAGE)
    listed = json.loads(done.stdout.decode("utf-8", "replace"))
    hostvars = (listed.get("_meta") or {}).get("hostvars") or {}
    members, todo, seen = set(), ["conduits"], set()
    while todo:
        group = todo.pop()
        if group in seen:
            continue
        seen.add(group)
        members.update((listed.get(group) or {}).get("hosts") or [])
        todo.extend((listed.get(group) or {}).get("children") or [])
    ports = {}
    for host in sorted(members):
        value = (hostvars.get(host) or {}).get("ssh_tunnel_remote_port")
        ports[host] = value if isinstance(value, int) and not isinstance(value, bool) else \
            int(value) if isinstance(value, str) and value.isdigit() else None
    return ports


class TunnelAudit:
    """``tunnel_audit``: one row per gateway any of the three accounts names, the findings, the safe fixes."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode

    def _ledger(self):
        directory = self.params.get("ledger_dir")
        records = {}
        if directory and os.path.isdir(directory):
            ledger = Ledger(directory)
            for name in sorted(os.listdir(directory)):
                if name.endswith(".yml") and not name.startswith("."):
                    try:
                        records[name[:-4]] = ledger.read(name[:-4])
                    except StageError:
                        continue  # the conduits inventory sets a broken record aside, in words, on every run
        return records

    def run(self):
        tunnels = dict((entry["gateway"], entry) for entry in self.params["tunnels"] or [] if entry.get("gateway"))
        records = self._ledger()
        inventory = self.params.get("inventory_dir")
        ports = inventory_ports(inventory) if inventory else {}
        names = set(tunnels) | set(name for name, record in records.items() if record.get("jumphost")) | set(ports)
        by_port = {}
        for name, entry in tunnels.items():
            by_port.setdefault(entry.get("port"), set()).add(name)
        for name, port in ports.items():
            if port is not None:
                by_port.setdefault(port, set()).add(name)
        rows, findings, fixes = [], {}, []
        for name in sorted(names):
            tunnel, record, port = tunnels.get(name), records.get(name), ports.get(name)
            jumphost = (record or {}).get("jumphost") or {}
            found = []
            if tunnel and not record and name not in ports:
                found.append(("orphan account", "registered on the jumphost (port %s, user %s) but neither the "
                                                "ledger nor the organisation's inventory knows it: a gateway retired "
                                                "by hand, or a typo. Remove it with jumphost_register state=absent "
                                                "once you know" % (tunnel.get("port"), tunnel.get("user"))))
            if tunnel and not tunnel.get("listening") and (record or name in ports):
                found.append(("not listening", "registered, but its tunnel port %s does not listen: the gateway is "
                                               "off, or its tunnel is down" % tunnel.get("port")))
            if not tunnel and (jumphost or name in ports):
                found.append(("not registered", "the %s names it, the jumphost has no account or key for it: its "
                                                "tunnel cannot log in" % ("ledger" if jumphost else "inventory")))
            if tunnel and record:
                pinned = _fingerprint(((record.get("host_keys") or {}).get("rsa")))
                if pinned and tunnel.get("key_fingerprint") and tunnel["key_fingerprint"] != pinned:
                    found.append(("key differs", "the jumphost holds key %s for it, the ledger pinned %s"
                                  % (tunnel["key_fingerprint"], pinned)))
                    fixes.append({"gateway": name, "host_key": record["host_keys"]["rsa"]})
            if tunnel and tunnel.get("port_held_by_other_uid"):
                found.append(("port clash", "its tunnel port %s is held by another account (uid %s)" % (
                    tunnel.get("port"), ", ".join(str(uid) for uid in tunnel["port_held_by_other_uid"]))))
            agreed = [value for value in (tunnel and tunnel.get("port"), jumphost.get("tunnel_port"), port) if value]
            if len(set(agreed)) > 1:
                found.append(("port clash", "the jumphost says port %s, the ledger %s, the inventory %s" % (
                    (tunnel or {}).get("port", "-"), jumphost.get("tunnel_port", "-"), port if port else "-")))
            shared = sorted(by_port.get((tunnel or {}).get("port") or port, set()) - {name})
            if shared:
                found.append(("port clash", "its tunnel port is also %s's" % ", ".join(shared)))
            if inventory and jumphost and name not in ports:  # one the ledger provisioned
                found.append(("not in inventory", "the organisation's inventory has no host %s under conduits: "
                                                  "make ping and make apply do not know it" % name))
            if name in ports and port is None:
                found.append(("no tunnel port", "its inventory entry has no ssh_tunnel_remote_port: make apply "
                                                "would tear its tunnel down"))
            findings[name] = [{"finding": kind, "detail": detail} for kind, detail in found]
            rows.append([name, (tunnel or {}).get("port", "-"), jumphost.get("tunnel_port", "-"),
                         port if port is not None else "-",
                         "yes" if (tunnel or {}).get("listening") else "no" if tunnel else "-",
                         ", ".join(sorted(set(kind for kind, _detail in found))) or "ok",
                         "; ".join(detail for _kind, detail in found)])
        header = ["gateway", "jumphost port", "ledger port", "inventory port", "listening", "findings", "detail"]
        troubled = sorted(name for name, found in findings.items() if found)
        summary = "%d tunnel(s): %d as the ledger and the inventory say, %d with findings, %d safe fix(es)" % (
            len(rows), len(rows) - len(troubled), len(troubled), len(fixes))
        return {"changed": False, "table": text_table(header, rows), "summary": summary, "findings": findings,
                "troubled": troubled, "fixes": fixes,
                "markdown": markdown_document("Tunnels", summary, header, rows)}


TUNNEL_AUDIT = StageModule(
    TunnelAudit,
    dict(
        tunnels=dict(type="list", elements="dict", required=True),
        ledger_dir=dict(type="path"),
        inventory_dir=dict(type="path"),
    ),
)
