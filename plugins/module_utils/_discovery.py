# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find Conduits: on bench ports (every unit at the same address, one per NIC), on provisioning LANs, and in the
ledger. Used by the ``conduits`` inventory plugin, and by ``unit_state_info`` to wait for units that were still
booting when the inventory looked.

Probing is concurrent and bounded: every TCP connect is a non-blocking socket
in one selector, at most ``limit`` at a time, each with its own deadline, so
a /24 of silent addresses costs one timeout, not 254 of them. Sockets to a
bench port are bound to its NIC (``SO_BINDTODEVICE``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import fnmatch
import os
import re
import selectors
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.lorawan.conduit.plugins.module_utils._net import interface_socket_options

MULTITECH_OUI = "00:08:00"
HTTPS, SSH = 443, 22
STATES = ("aep_uncommissioned", "aep", "mlinux", "unreachable")
_IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)


class Target:
    """One place a unit may answer: an address, its ports, and the NIC to reach it through."""

    def __init__(self, address, interface=None, source="lan", https_port=HTTPS, ssh_port=SSH, name=None, mac=None):
        self.address = address
        self.interface = interface
        self.source = source
        self.https_port = https_port
        self.ssh_port = ssh_port
        self.name = name
        self.mac = mac  # known before the probe (a DHCP lease says it), else from the neighbour table

    def key(self):
        return (self.interface, self.address)


def probe_tcp(endpoints, timeout=1.0, limit=256):
    """``{(address, port, interface): open}`` for every endpoint, connecting to at most ``limit`` at a time."""
    results = {}
    pending = list(endpoints)
    selector = selectors.DefaultSelector()
    started = {}
    try:
        while pending or started:
            while pending and len(started) < limit:
                endpoint = pending.pop()
                address, port, interface = endpoint
                try:
                    family = socket.AF_INET6 if ":" in address else socket.AF_INET
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    for level, option, value in interface_socket_options(interface):
                        sock.setsockopt(level, option, value)
                    sock.setblocking(False)
                    status = sock.connect_ex((address, port))
                except OSError:
                    results[endpoint] = False
                    continue
                if status == 0:
                    results[endpoint] = True
                    sock.close()
                elif status in _IN_PROGRESS:
                    selector.register(sock, selectors.EVENT_WRITE, endpoint)
                    started[sock] = (endpoint, time.monotonic() + timeout)
                else:
                    results[endpoint] = False
                    sock.close()
            if not started:
                continue
            nearest = min(deadline for _endpoint, deadline in started.values())
            for key, _events in selector.select(max(0.0, nearest - time.monotonic())):
                sock = key.fileobj
                endpoint, _deadline = started.pop(sock)
                selector.unregister(sock)
                results[endpoint] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                sock.close()
            now = time.monotonic()
            for sock, (endpoint, deadline) in list(started.items()):
                if deadline <= now:
                    started.pop(sock)
                    selector.unregister(sock)
                    results[endpoint] = False
                    sock.close()
    finally:
        for sock in started:
            sock.close()
        selector.close()
    return results


def neighbours(proc="/proc"):
    """``{(interface, address): mac}`` from the kernel's IPv4 neighbour (ARP) table."""
    table = {}
    try:
        with open(os.path.join(proc, "net", "arp")) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if len(fields) >= 6 and fields[3] != "00:00:00:00:00:00":
                    table[(fields[5], fields[0])] = fields[3].lower()
    except (IOError, OSError, StopIteration):
        pass
    return table


def interfaces(patterns, sys_class_net="/sys/class/net"):
    """The interfaces that match any name or glob in ``patterns``, or whose MAC matches an ``oui:`` glob."""
    try:
        names = sorted(os.listdir(sys_class_net))
    except OSError:
        return []
    chosen = []
    for name in names:
        for pattern in patterns:
            if pattern.startswith("mac:"):
                try:
                    with open(os.path.join(sys_class_net, name, "address")) as handle:
                        mac = handle.read().strip().lower()
                except (IOError, OSError):
                    continue
                if fnmatch.fnmatch(mac, pattern[4:].lower()):
                    chosen.append(name)
                    break
            elif fnmatch.fnmatch(name, pattern):
                chosen.append(name)
                break
    return chosen


def gateway_name(prefix, mac):
    """The organisation's naming convention: prefix + MAC with dashes (``ttn-nyc-00-08-00-4a-26-f1``)."""
    return "%s%s" % (prefix, mac.lower().replace(":", "-"))


def classify(target, https_open, ssh_open, commissioning):
    """The state of a unit from what answered. ``commissioning``: the mPower commissioning check, or None."""
    if https_open and commissioning is not None:
        return "aep" if commissioning else "aep_uncommissioned"
    if ssh_open and not https_open:
        return "mlinux"
    if https_open or ssh_open:
        return "aep"
    return "unreachable"


def discover(targets, commissioned_check, timeout=1.0, limit=256, workers=16, arp=None):
    """Probe ``targets``; a list of dicts (target, state, mac) for the units that answered.

    ``commissioned_check(target)`` asks a unit whose HTTPS port is open whether it is commissioned (True/False,
    None when it does not answer like mPower).
    """
    endpoints = []
    for target in targets:
        endpoints.append((target.address, target.https_port, target.interface))
        endpoints.append((target.address, target.ssh_port, target.interface))
    opened = probe_tcp(endpoints, timeout=timeout, limit=limit)
    answering = [target for target in targets
                 if opened.get((target.address, target.https_port, target.interface))
                 or opened.get((target.address, target.ssh_port, target.interface))]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        checks = dict(zip([t.key() for t in answering], pool.map(
            lambda target: commissioned_check(target)
            if opened.get((target.address, target.https_port, target.interface)) else None, answering)))
    table = neighbours() if arp is None else arp
    found = []
    for target in targets:
        https_open = bool(opened.get((target.address, target.https_port, target.interface)))
        ssh_open = bool(opened.get((target.address, target.ssh_port, target.interface)))
        if not (https_open or ssh_open) and target.source not in ("listed", "ledger", "dhcp"):
            continue  # silence on a LAN or an empty bench port is no unit; a unit we were told of is unreachable
        if target.mac:
            mac = target.mac
        elif target.interface:
            mac = table.get((target.interface, target.address))
        else:
            mac = next((value for (_nic, address), value in sorted(table.items()) if address == target.address), None)
        check = checks.get(target.key())
        state = classify(target, https_open, ssh_open, check)
        if target.source == "lan" and not (mac and mac.startswith(MULTITECH_OUI)) and check is None:
            continue  # neither a MultiTech MAC nor an mPower answer: not ours (the ledger vouches for its own)
        found.append({"target": target, "state": state, "mac": mac, "https_open": https_open, "ssh_open": ssh_open,
                      "commissioning": check})
    return found


_SAFE = re.compile(r"[^a-z0-9-]+")


def address_name(prefix, address, interface=None):
    """A name for a unit whose MAC is unknown: its NIC or its address."""
    tail = interface or address
    return prefix + _SAFE.sub("-", tail.lower()).strip("-")


def commissioned(target):
    """The mPower commissioning check of a unit whose HTTPS port is open: True/False, None when it does not answer
    like mPower (yet)."""
    from ansible_collections.lorawan.conduit.plugins.module_utils._aep_api import MPowerClient, MPowerError
    try:
        return MPowerClient(target.address, port=target.https_port, interface=target.interface,
                            timeout=5.0).is_commissioned()
    except MPowerError:
        return None


def settled(unit):
    """Whether what answered tells the unit's state: SSH alone (mLinux), or an HTTPS port that answers like mPower.
    An HTTPS port open before mPower answers is a unit still starting."""
    return unit["state"] != "unreachable" and (not unit["https_open"] or unit["commissioning"] is not None)


def wait_for_units(targets, wait_timeout, interval=2.0, probe_timeout=1.0, check=commissioned, clock=time.monotonic,
                   sleep=time.sleep):
    """``{name: {"state": ..., "waited": seconds}}`` for ``targets`` (each with its ``name``, and source ``listed``
    so that a silent one is reported, not dropped), probing those that have not settled every ``interval`` seconds
    until ``wait_timeout``; a unit that never settled gets the state its last probe showed (``unreachable`` when
    nothing answered)."""
    started = clock()
    pending = list(targets)
    states = {}
    while True:
        for unit in discover(pending, check, timeout=probe_timeout, arp={}):
            if settled(unit) or clock() - started >= wait_timeout:
                states[unit["target"].name] = {"state": unit["state"], "waited": round(clock() - started, 1)}
        pending = [target for target in pending if target.name not in states]
        if not pending:
            return states
        sleep(max(0.0, min(interval, wait_timeout - (clock() - started))))
