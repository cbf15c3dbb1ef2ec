# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provisioning LAN's DHCP leases, as a discovery source: dnsmasq's lease file and ISC dhcpd's ``dhcpd.leases``.

Every line of a lease file comes from what a client sent (its MAC, its host name): nothing is taken that is not
in its strict form, a MAC, an IPv4 or IPv6 address, a time. Of the leases for one MAC the latest counts (dhcpd
appends a new block on each renewal). Each sighting of a unit is recorded under ``<ledger>/sightings/<mac>.yml``:
one record per MAC, its first and last sighting, its latest address and lease, updated each time discovery runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import calendar
import ipaddress
import os
import re
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._files import ensure_directory, write_atomic

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}\Z")
_DHCPD_BLOCK = re.compile(r"^lease\s+(\S+)\s*\{(.*?)^\}", re.MULTILINE | re.DOTALL)
_DHCPD_END = re.compile(r"^\s*ends\s+(?:\d\s+(\d{4}/\d{2}/\d{2}\s+\d{2}:\d{2}:\d{2})|never)\s*;", re.MULTILINE)
_DHCPD_MAC = re.compile(r"^\s*hardware\s+ethernet\s+([0-9A-Fa-f:]+)\s*;", re.MULTILINE)
_DHCPD_STATE = re.compile(r"^\s*binding\s+state\s+(\w+)\s*;", re.MULTILINE)


class LeaseFileError(ValueError):
    """A lease file that cannot be read; the message names it."""


def _address(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _mac(text):
    mac = (text or "").lower()
    return mac if _MAC.match(mac) else None


def _dnsmasq(text):
    """``<expiry epoch, 0 = never> <mac> <ip> <hostname> <client id>`` per line."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        mac, address = _mac(fields[1]), _address(fields[2])
        if mac and address:
            expires = int(fields[0])
            yield {"mac": mac, "address": address, "expires": expires or None}


def _dhcpd(text):
    """``lease <ip> { ... ends <weekday> <yyyy/mm/dd hh:mm:ss>; hardware ethernet <mac>; ... }`` blocks (UTC)."""
    for address_text, body in _DHCPD_BLOCK.findall(text):
        mac_match, state = _DHCPD_MAC.search(body), _DHCPD_STATE.search(body)
        if state and state.group(1) not in ("active", "static"):
            continue
        mac, address = _mac(mac_match.group(1) if mac_match else ""), _address(address_text)
        if not (mac and address):
            continue
        end = _DHCPD_END.search(body)
        expires = None
        if end and end.group(1):
            try:
                expires = calendar.timegm(time.strptime(end.group(1), "%Y/%m/%d %H:%M:%S"))
            except ValueError:
                continue
        yield {"mac": mac, "address": address, "expires": expires}


def read_leases(path, oui=None, now=None):
    """The current lease of each MAC in the lease file ``path`` (dnsmasq's or ISC dhcpd's, told apart by their
    content), for MACs that start with ``oui`` when given: ``{mac: {"mac", "address", "expires", "file"}}``. A lease
    that has expired is left out."""
    try:
        with open(path) as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        raise LeaseFileError("the DHCP lease file %s cannot be read (%s)" % (path, exc))
    except UnicodeDecodeError as exc:
        raise LeaseFileError("the DHCP lease file %s is not text (%s)" % (path, exc))
    now = time.time() if now is None else now
    leases = {}
    parser = _dhcpd if re.search(r"^lease\s", text, re.MULTILINE) else _dnsmasq
    for lease in parser(text):
        if oui and not lease["mac"].startswith(oui.lower()):
            continue
        if lease["expires"] is not None and lease["expires"] < now:
            continue
        known = leases.get(lease["mac"])
        if known is None or (known["expires"] or 0) <= (lease["expires"] or float("inf")):
            leases[lease["mac"]] = dict(lease, file=path)
    return leases


def record_sighting(directory, lease, source, now=None):
    """The sighting of ``lease`` in ``<directory>/sightings/<mac>.yml``, written atomically when it changed: its
    first sighting is kept, its latest address, lease and time replace the earlier ones."""
    folder = os.path.join(directory, "sightings")
    path = os.path.join(folder, lease["mac"].replace(":", "-") + ".yml")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    record = {}
    try:
        with open(path) as handle:
            loaded = yaml.safe_load(handle)
        record = loaded if isinstance(loaded, dict) else {}
    except (IOError, OSError, yaml.YAMLError):
        record = {}
    expires = lease.get("expires")
    updated = {"mac": lease["mac"], "first_seen": record.get("first_seen") or stamp, "last_seen": stamp,
               "address": lease["address"], "source": source,
               "lease_expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)) if expires else "never"}
    if updated != record:
        ensure_directory(folder)
        write_atomic(path, yaml.safe_dump(updated, default_flow_style=False, sort_keys=False))
    return updated
