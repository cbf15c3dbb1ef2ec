# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take a gateway out of service (``gateway_decommission``), in two parts around the jumphost's removal.

``part: unit``: while its tunnel still leads to it, the unit loses what provisioning gave it: the tunnel (its
``ssh_tunnel`` defaults, init script and boot links under ``/var/config`` and ``/etc``), root's keys that the
pipeline installed, and the jumphost's pin in root's ``known_hosts``; the tunnel is stopped last, detached, as the
session runs over it. A unit that does not answer keeps them, and the result says so.

``part: records``: the gateway leaves the organisation's ttn-multitech-cm inventory (its host_vars file, or folder,
and its lines in ``hosts``; everything else byte for byte, a backup of each file kept beside it) and its ledger
record is retired (moved to ``<ledger>/retired/``, with when and why), so no inventory lists it again.

Check mode says all of it and changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import shlex
import time

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import (
    PARAMIKO_REQUIREMENT,
    DeviceSSHError,
    device_ssh_argument_spec,
    session_from_params,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._files import FolderLock, ensure_directory, write_atomic
from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_tunnel import (
    DEFAULTS,
    DEFAULTS_LINK,
    KNOWN_HOSTS,
    SCRIPT,
    SCRIPT_LINK,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, ledger_argument_spec, now
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import known_hosts_name
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import Progress, StageModule
from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import (
    HostsFile,
    backup_copy,
    hosts_file,
    writable_or_refuse,
)

STAGE = "decommission"
AUTHORIZED_KEYS = "/var/config/home/root/.ssh/authorized_keys"


def without_host_lines(hosts, host):
    """The text of ``hosts`` (an INI :class:`HostsFile`) without its lines that list ``host``; None when none do."""
    dropped = set()
    for _name, kind, _header, numbers in hosts.sections:
        if kind == "hosts":
            dropped.update(number for number in numbers if shlex.split(hosts.lines[number], comments=True)[0] == host)
    if not dropped:
        return None
    return "".join(line + "\n" for number, line in enumerate(hosts.lines) if number not in dropped)


class Decommission:
    """``gateway_decommission``: one part of taking a gateway out of service (see the module docstring)."""

    def __init__(self, params, check_mode=False, progress=None):
        self.params = params
        self.check_mode = check_mode
        self.progress = progress or Progress()
        self.gateway = params["name"]
        self.ledger = Ledger(params["ledger_dir"])
        self.actions = []
        self.remaining = []

    def fail(self, message):
        raise StageError("%s: %s" % (self.gateway, message), STAGE, gateway=self.gateway)

    def run(self):
        record = self.ledger.read(self.gateway)
        if not record.get("identity"):
            self.fail("the ledger %s has no record of it: nothing to decommission (a retired gateway's record is "
                      "under retired/)" % self.ledger.path(self.gateway))
        if self.params["part"] == "unit":
            self._unit(record)
        else:
            self._inventory()
            self._retire(record)
        return {"changed": bool(self.actions), "actions": self.actions, "remaining": self.remaining}

    # --- the unit ---------------------------------------------------------------------

    def _unit(self, record):
        self.progress.set("removing the tunnel and keys")
        pinned = list((record.get("host_keys") or {}).values())
        jumphost = record.get("jumphost") or {}
        steps = []
        for path in (DEFAULTS_LINK, SCRIPT_LINK, DEFAULTS, SCRIPT):
            steps.append(("remove %s" % path, "rm -f %s" % shlex.quote(path)))
        steps.append(("remove the tunnel's boot links", "update-rc.d -f ssh_tunnel remove >/dev/null 2>&1 || true"))
        for key in self.params["authorized_keys"]:
            words = key.split()
            if len(words) >= 2:
                steps.append(("remove root's key %s" % " ".join(words[:2])[:40],
                              "test ! -f {0} || {{ grep -v -F -- {1} {0} || true; }} > {0}.new && cat {0}.new > {0}; "
                              "rm -f {0}.new"
                              .format(AUTHORIZED_KEYS, shlex.quote(words[1]))))
        if jumphost.get("host"):
            name = known_hosts_name(jumphost["host"], int(jumphost.get("port") or 22))
            steps.append(("unpin the jumphost %s in %s" % (name, KNOWN_HOSTS),
                          "test ! -f {0} || ssh-keygen -R {1} -f {0} >/dev/null 2>&1 || true"
                          .format(KNOWN_HOSTS, shlex.quote(name))))
        # the session runs over the tunnel: it is stopped last, after this session ended
        steps.append(("stop the tunnel", "( sleep 1; killall autossh; killall ssh ) </dev/null >/dev/null 2>&1 &"))
        done = []
        try:
            with session_from_params(self.params, host_key=pinned, label=self.gateway) as session:
                for words, command in steps:
                    if not self.check_mode:
                        session.sudo("sh -c %s" % shlex.quote(command), timeout=60)
                    done.append(words)
        except DeviceSSHError as exc:
            self.remaining.append("the unit did not answer (%s): %s still on it; reset it (or flash it) before it is "
                                  "used anywhere else" % (exc.reason(self.gateway), "its tunnel and root's keys are"
                                                          if not done else "what is not listed as done is"))
        self.actions = done

    # --- the organisation's inventory and the ledger ----------------------------------------

    def _inventory(self):
        inventory = self.params.get("inventory_dir")
        if not inventory:
            return
        folder = os.path.join(inventory, "host_vars")
        vars_files = [os.path.join(folder, self.gateway + suffix) for suffix in (".yml", ".yaml", "", ".json")
                      if os.path.isfile(os.path.join(folder, self.gateway + suffix))]
        vars_folder = os.path.join(folder, self.gateway)
        hosts_path = os.path.join(inventory, "hosts")
        # the batch's gateways leave the same hosts file at once: each reads, edits and writes it under its lock
        with FolderLock(hosts_path):
            edited = None
            if os.path.isfile(hosts_path):
                with open(hosts_path) as handle:
                    text = handle.read()
                hosts = hosts_file(hosts_path, text)
                if hosts.groups_of(self.gateway):
                    if not isinstance(hosts, HostsFile):
                        self.fail("%s is a YAML inventory: take %s out of it yourself (the pipeline edits INI hosts "
                                  "files only for this); nothing was changed" % (hosts_path, self.gateway))
                    edited = without_host_lines(hosts, self.gateway)
                    writable_or_refuse(hosts_path)
            for path in vars_files:
                writable_or_refuse(path)
            if edited is not None:
                self.actions.append("take %s out of %s (a backup kept)" % (self.gateway, hosts_path))
                if not self.check_mode:
                    write_atomic(hosts_path, edited, backup_copy)
        for path in vars_files:
            self.actions.append("remove %s (a backup kept)" % path)
            if not self.check_mode:
                backup_copy(path)
                os.unlink(path)
        if os.path.isdir(vars_folder):
            kept = "%s.%d.%s" % (vars_folder, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~"))
            self.actions.append("move %s aside to %s" % (vars_folder, kept))
            if not self.check_mode:
                os.rename(vars_folder, kept)

    def _retire(self, record):
        retired = os.path.join(self.params["ledger_dir"], "retired")
        target = os.path.join(retired, "%s.%s.yml" % (self.gateway, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
        self.actions.append("retire its ledger record to %s" % target)
        if self.check_mode:
            return
        ensure_directory(retired)
        write_atomic(target, yaml.safe_dump(dict(record, retired={"at": now(), "why": "decommissioned"}),
                                            default_flow_style=False, sort_keys=False))
        os.unlink(self.ledger.path(self.gateway))
        self.remaining.append("delete the gateway %s in The Things Stack (ttn-lw-cli gateways delete %s), and take "
                              "the unit down from where it is mounted" % (self.gateway, self.gateway))


def _decommission_options():
    spec = device_ssh_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        part=dict(type="str", choices=["unit", "records"], required=True),
        authorized_keys=dict(type="list", elements="str", default=[], no_log=False),
        inventory_dir=dict(type="path"),
    )
    spec.update(ledger_argument_spec())
    spec["ledger_dir"] = dict(type="path", required=True)
    return spec


GATEWAY_DECOMMISSION = StageModule(Decommission, _decommission_options(), requirements=[PARAMIKO_REQUIREMENT],
                                   batch=True, ledger_stage=None)
