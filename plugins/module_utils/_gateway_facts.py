# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identify an mLinux unit over SSH and pin it in the ledger (the ``identify`` stage).

The unit must be the one the ledger knows: the same MAC and serial, and one of
the host keys pinned there. A changed host key is refused before any password
is sent, unless the operator says the unit was re-flashed; even then the MAC
and serial must match, so a swapped unit is never taken for a re-flashed one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import shlex

from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import (
    PARAMIKO_REQUIREMENT,
    DeviceSSHError,
    HostKeyMismatch,
    device_ssh_argument_spec,
    session_from_params,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._device_values import (
    DeviceValueError,
    checked,
    checked_identity,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import (
    Ledger,
    ledger_argument_spec,
    now,
    record_stage,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import (
    KeyFormatError,
    key_fingerprint,
    parse_public_key,
    same_key,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import Progress, StageModule

STAGE = "identify"
SYSFS = (("product_id", "product-id"), ("serial", "device-id"), ("mac", "mac-eth"), ("hw_version", "hw-version"),
         ("uuid", "uuid"), ("lora_eui", "lora/eui"), ("lora_product_id", "lora/product-id"),
         ("lora_hw_version", "lora/hw-version"))
HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")
_SEPARATOR = "@@lorawan.conduit@@"


def product_type(hw_version):
    """``MTCDT-0.1`` -> ``mtcdt``: what ttn-multitech-cm calls conduit_type."""
    return (hw_version or "").rsplit("-", 1)[0].lower() or None


def read_sections(session, commands, sudo=False):
    """Run ``commands`` in one round trip (as root with ``sudo``); the stdout of each (empty when it failed)."""
    script = " ; ".join("%s 2>/dev/null ; echo %s" % (command, _SEPARATOR) for command in commands)
    result = session.sudo("sh -c %s" % shlex.quote(script)) if sudo else session.run(script)
    parts = result.stdout.split(_SEPARATOR + "\n")
    return [part.strip() for part in parts[:len(commands)]] + [""] * (len(commands) - len(parts[:len(commands)]))


def read_identity(session):
    """Identity, mLinux version and host public keys of the unit behind ``session``."""
    commands = ["mts-io-sysfs show %s" % name for _key, name in SYSFS]
    commands += ["cat /etc/mlinux-version"] + ["cat /etc/ssh/ssh_host_%s_key.pub" % kind for kind in HOST_KEY_TYPES]
    sections = read_sections(session, commands)
    identity = {}
    for (key, _name), value in zip(SYSFS, sections):
        value = value.splitlines()[0].strip() if value else None
        if value and key in ("mac", "lora_eui", "uuid"):
            value = value.lower()
        identity[key] = value
    identity["product_type"] = product_type(identity["hw_version"])
    version_text = sections[len(SYSFS)]
    version = None
    if version_text.startswith("mLinux"):
        version = version_text.splitlines()[0].split()[-1]
    host_keys = {}
    for kind, text in zip(HOST_KEY_TYPES, sections[len(SYSFS) + 1:]):
        if text:
            try:
                host_keys[kind] = parse_public_key(text.splitlines()[0]).text(comment="")
            except KeyFormatError:
                continue
    return identity, version, host_keys


class Identifier:
    """``gateway_facts``: read the unit, check it against the ledger, record it."""

    def __init__(self, params, check_mode=False, progress=None):
        self.params = params
        self.check_mode = check_mode
        self.progress = progress or Progress()
        self.gateway = params["name"]
        self.ledger = Ledger(params["ledger_dir"]) if params.get("ledger_dir") else None

    def fail(self, message, **context):
        raise StageError("%s: %s" % (self.gateway, message), STAGE, gateway=self.gateway, **context)

    def run(self):
        self.progress.set("reading the unit")
        record = self.ledger.read(self.gateway) if self.ledger else {"stages": {}}
        pinned = list((record.get("host_keys") or {}).values())
        if not pinned and self.params.get("host_key"):
            pinned = [self.params["host_key"]]
        reflashed = self.params.get("reflashed")
        try:
            session = session_from_params(self.params, host_key=pinned,
                                          host_key_policy="ignore" if reflashed else "pin", label=self.gateway)
            with session:
                identity, version, host_keys = read_identity(session)
                seen = session.host_key_seen
        except HostKeyMismatch as exc:
            self.fail("its SSH host key changed: the unit offers %s, the ledger pinned %s. If the unit was "
                      "re-flashed, run again with reflashed=true (role: gateway_facts_reflashed=true) to accept "
                      "its new keys; otherwise something else answers at %s:%d - find out what before going on"
                      % (key_fingerprint(exc.seen), ", ".join(key_fingerprint(key) for key in pinned),
                         self.params["address"], self.params["port"]), seen_host_key=exc.seen)
        except DeviceSSHError as exc:
            self.fail("%s (stage %s)" % (exc, STAGE))
        if not identity.get("mac") or not identity.get("product_id"):
            self.fail("the unit at %s does not answer mts-io-sysfs like an mLinux Conduit" % self.params["address"])
        try:
            checked_identity(identity)
            checked("mlinux_version", version)
        except DeviceValueError as exc:
            self.fail("the unit at %s:%d answered %s, which no Conduit says; none of its values was recorded. Look at "
                      "the unit before going on (its mts-io-sysfs or /etc/mlinux-version)"
                      % (self.params["address"], self.params["port"], exc))
        if not any(same_key(seen, key) for key in host_keys.values()):
            self.fail("the host key it offered (%s) is not one of its /etc/ssh/ssh_host_*_key.pub files"
                      % key_fingerprint(seen))
        known = record.get("identity") or {}
        for key in ("mac", "serial"):
            if known.get(key) and known[key] != identity.get(key):
                self.fail("the unit at %s has %s %s but the ledger (%s) records %s %s: it is another unit. Fix the "
                          "inventory, or if this unit replaced the old one, remove its ledger file"
                          % (self.params["address"], key, identity.get(key), self.ledger.path(self.gateway), key,
                             known[key]))
        expected = self.params.get("expected_product_type")
        if expected and identity["product_type"] != expected:
            self.fail("the unit is an %s, not the %s the inventory expects" % (identity["product_type"], expected))
        previous_keys = record.get("host_keys") or {}
        keys_changed = bool(previous_keys) and any(
            not any(same_key(key, old) for old in previous_keys.values()) for key in host_keys.values())
        if keys_changed and not reflashed:
            self.fail("some of its SSH host keys changed since the ledger pinned them (%s now). If the unit was "
                      "re-flashed, run again with reflashed=true (role: gateway_facts_reflashed=true)"
                      % ", ".join(key_fingerprint(key) for key in host_keys.values()))
        updated = dict(record, identity=identity, mlinux_version=version, host_keys=host_keys)
        if not self.params.get("jump_host"):  # where it answers on the bench or LAN; in the field, its tunnel
            updated["reach"] = {"address": self.params["address"], "ssh_port": self.params["port"],
                                "bind_interface": self.params.get("bind_interface") or ""}
        if keys_changed:
            history = list(record.get("history") or [])
            history.append({"event": "re-flashed, new host keys accepted", "at": now(),
                            "previous_host_keys": sorted(key_fingerprint(key) for key in previous_keys.values())})
            updated["history"] = history
        updated = record_stage(updated, STAGE, mlinux_version=version)
        changed = False
        if self.ledger and updated != record:
            changed = True
            if not self.check_mode:
                self.ledger.write(self.gateway, updated)
        return {"changed": changed, "identity": identity, "mlinux_version": version, "host_keys": host_keys,
                "host_key": seen, "reflashed": keys_changed,
                "ledger": self.ledger.path(self.gateway) if self.ledger else None}


def _gateway_facts_options():
    spec = device_ssh_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        host_key=dict(type="str", no_log=False),
        reflashed=dict(type="bool", default=False),
        expected_product_type=dict(type="str"),
    )
    spec.update(ledger_argument_spec())
    return spec


GATEWAY_FACTS = StageModule(Identifier, _gateway_facts_options(), requirements=[PARAMIKO_REQUIREMENT], batch=True,
                            ledger_stage=STAGE, required_one_of=[("password", "key_file")])
