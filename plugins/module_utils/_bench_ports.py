# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provisioning host's bench NICs: out of NetworkManager's hands, up, addressed, loose reverse-path filter,
and optionally each in a VRF of its own where the kernel has VRFs (for operators who use ``ip vrf exec``).

The same subnet sits on every bench NIC. Our own sockets are bound to a NIC
(``SO_BINDTODEVICE``), so the kernel sends them out of that NIC; the loose
reverse-path filter lets the answers in, since the route back to 192.168.2.1
may name another NIC.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import shutil

from ansible_collections.lorawan.conduit.plugins.module_utils._discovery import interfaces
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError

STAGE = "provisioning_host"
IFF_UP = 0x1


class BenchPorts:
    """``bench_ports``: make every matching NIC a bench port."""

    def __init__(self, params, run_command, check_mode=False, sys_class_net="/sys/class/net",
                 proc_sys="/proc/sys"):
        self.params = params
        self.run_command = run_command
        self.check_mode = check_mode
        self.sys_class_net = sys_class_net
        self.proc_sys = proc_sys
        self.actions = []
        self.warnings = []

    def _act(self, text):
        self.actions.append(text)
        return not self.check_mode

    def _ip(self, *args):
        status, out, err = self.run_command(["ip"] + list(args))
        if status != 0:
            raise StageError("ip %s failed: %s" % (" ".join(args), (err or out).strip()), STAGE)
        return out

    def run(self):
        nics = interfaces(self.params["ports"], self.sys_class_net)
        if not nics:
            raise StageError("no network interface matches %s: plug the bench NICs in, or correct the names or MAC "
                             "globs" % ", ".join(self.params["ports"]), STAGE)
        self._networkmanager(nics)
        vrf_reason = None
        if self.params["vrf"]:
            vrf_reason = self._vrf_unsupported()
            if vrf_reason:
                self.warnings.append("VRFs skipped: this kernel cannot make them (%s); our own traffic does not need "
                                     "them (sockets are bound to each NIC)" % vrf_reason)
        for index, nic in enumerate(nics):
            self._port(nic)
            if self.params["vrf"] and not vrf_reason:
                self._vrf(nic, self.params["vrf_table_base"] + index)
        return {"changed": bool(self.actions), "actions": self.actions, "interfaces": nics,
                "vrf_skipped_reason": vrf_reason, "warnings": self.warnings}

    def _networkmanager(self, nics):
        path = self.params["networkmanager_conf"]
        if not os.path.isdir(os.path.dirname(path)):
            return  # NetworkManager is not installed: nothing manages the NICs
        wanted = ("# Written by lorawan.conduit (provisioning_host): the bench NICs are not NetworkManager's.\n"
                  "[keyfile]\nunmanaged-devices=%s\n" % ";".join("interface-name:%s" % nic for nic in nics))
        try:
            with open(path) as handle:
                current = handle.read()
        except IOError:
            current = None
        if current != wanted and self._act("keep NetworkManager off %s (%s)" % (", ".join(nics), path)):
            with open(path, "w") as handle:
                handle.write(wanted)
            if shutil.which("nmcli"):
                self.run_command(["nmcli", "general", "reload"])

    def _port(self, nic):
        with open(os.path.join(self.sys_class_net, nic, "flags")) as handle:
            flags = int(handle.read().strip(), 16)
        if not flags & IFF_UP and self._act("bring %s up" % nic):
            self._ip("link", "set", nic, "up")
        address = self.params["address"]
        present = self._ip("-o", "-4", "addr", "show", "dev", nic).split()
        if address not in present and self._act("give %s the address %s" % (nic, address)):
            self._ip("addr", "add", address, "dev", nic)
        path = os.path.join(self.proc_sys, "net", "ipv4", "conf", nic, "rp_filter")
        with open(path) as handle:
            current = handle.read().strip()
        if current != "2" and self._act("loose reverse-path filter on %s" % nic):
            with open(path, "w") as handle:
                handle.write("2\n")

    def _vrf_unsupported(self):
        status, _out, err = self.run_command(["ip", "-d", "link", "add", "lcvrfprobe", "type", "vrf", "table",
                                              "65000"])
        if status != 0:
            return (err or "").strip() or "ip link add type vrf failed"
        self.run_command(["ip", "link", "del", "lcvrfprobe"])
        return None

    def _vrf(self, nic, table):
        vrf = "vrf-%s" % nic[:11]
        status, _out, _err = self.run_command(["ip", "link", "show", vrf])
        if status != 0 and self._act("make %s (table %d)" % (vrf, table)):
            self._ip("link", "add", vrf, "type", "vrf", "table", str(table))
            self._ip("link", "set", vrf, "up")
        master = os.path.join(self.sys_class_net, nic, "master")
        if (not os.path.exists(master) or os.path.basename(os.readlink(master)) != vrf) and \
                self._act("put %s into %s" % (nic, vrf)):
            self._ip("link", "set", nic, "master", vrf)
