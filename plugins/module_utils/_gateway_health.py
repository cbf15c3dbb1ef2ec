# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A gateway's health, as its ledger record and the organisation's inventory say it should be (``gateway_health``).

The unit is reached as any device module reaches it (through the jumphost in the field) and read in one round
trip: its mLinux version, LoRa EUI, packet forwarder, clock, free space and uptime; reaching it at all checks its
tunnel and its host key against the ledger's pin. Remediation is opt-in and goes a step at a time (restart the
forwarder, set the clock, then reboot and wait for it to come back), checking again after each. A gateway that
stays unhealthy is marked ``needs_attention`` in its ledger record, with the reason; later runs leave it alone until
an operator clears the mark (``clear_attention``). Nothing the unit says is trusted: each value is checked against
its strict form before it is compared or shown.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import shlex
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import (
    PARAMIKO_REQUIREMENT,
    DeviceSSHError,
    HostKeyMismatch,
    JumpFailed,
    TunnelClosed,
    device_ssh_argument_spec,
    session_from_params,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._device_values import DeviceValueError, checked, shown
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_facts import read_sections
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, ledger_argument_spec, now
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import key_fingerprint
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import Progress, StageModule

STAGE = "health"
# (init script, pid file) of the packet forwarders ttn-multitech-cm's make apply installs: its ttn-pkt-forwarder
# (the mp and legacy variants) and its lora-basic-station
FORWARDERS = (("ttn-pkt-forwarder", "/var/run/lora-pkt-fwd.pid"), ("lora-basic-station", "/var/run/lora/station.pid"))
CHECKS = ("reachable", "host_key", "tunnel", "mlinux_version", "lora_eui", "forwarder", "clock", "free_space",
          "uptime")
FREE_SPACE_MOUNTS = ("/", "/var/config")
REBOOT_MARK = "/var/volatile/.lorawan-conduit-before-reboot"
_FORWARDER_COMMAND = (
    'for pair in %s; do set -- $pair; if [ -x /etc/init.d/$1 ]; then p=$(cat $2 2>/dev/null); '
    'if [ -n "$p" ] && [ -d /proc/$p ]; then echo "$1 running"; else echo "$1 stopped"; fi; break; fi; done'
    % " ".join('"%s %s"' % pair for pair in FORWARDERS))
READ_COMMANDS = ("cat /etc/mlinux-version", "mts-io-sysfs show lora/eui", _FORWARDER_COMMAND, "date +%s",
                 "cat /proc/uptime") + tuple("df -kP %s" % path for path in FREE_SPACE_MOUNTS)


def _number(text):
    """The first word of ``text`` as an int (a float's whole part), or None: a unit's answer is not trusted."""
    words = (text or "").split()
    try:
        return int(float(words[0])) if words else None
    except ValueError:
        return None


def _free_kib(df_text):
    """The free KiB of the file system ``df -kP <path>`` shows (its last line), or None when it does not parse."""
    lines = (df_text or "").splitlines()
    fields = lines[-1].split() if len(lines) >= 2 else []
    return int(fields[3]) if len(fields) >= 6 and fields[3].isdigit() else None


def _check(ok, value=None, detail="", remediable=False):
    return {"ok": bool(ok), "value": value, "detail": detail, "remediable": remediable and not ok}


class HealthCheck:
    """``gateway_health``: check one gateway, remediate when asked, mark it when it stays unhealthy."""

    def __init__(self, params, check_mode=False, progress=None, clock=time.time, sleep=time.sleep):
        self.params = params
        self.check_mode = check_mode
        self.progress = progress or Progress()
        self.gateway = params["name"]
        self.clock = clock
        self.sleep = sleep
        if not params.get("ledger_dir"):
            raise StageError("%s: health needs the ledger (ledger_dir): the pinned host keys and what the gateway "
                             "was provisioned as are there" % self.gateway, STAGE, gateway=self.gateway)
        self.ledger = Ledger(params["ledger_dir"])
        self.remediation = []
        self.changed = False

    # --- the stage --------------------------------------------------------------------

    def run(self):
        record = self.ledger.read(self.gateway)
        attention = record.get("needs_attention")
        if attention and not self.params["clear_attention"]:
            # an earlier run's outcome stands (the ledger keeps it): an operator looks at this one first
            return {"changed": False, "healthy": False, "earlier": True, "needs_attention": attention,
                    "checks": {}, "remediation": []}
        if attention:
            self.changed = True
            record = dict((key, value) for key, value in record.items() if key != "needs_attention")
            if not self.check_mode:
                self.ledger.write(self.gateway, record)
        pinned = list((record.get("host_keys") or {}).values())
        if not pinned:
            raise StageError("%s: the ledger pins no host key of it (%s): identify it first (provision.yml)"
                             % (self.gateway, self.ledger.path(self.gateway)), STAGE, gateway=self.gateway)
        checks = self._checks(record, pinned)
        if self.params["remediate"] and not self._healthy(checks):
            checks = self._remediate(record, pinned, checks)
        return self._finish(checks)

    def _finish(self, checks):
        problems = ["%s: %s" % (name, checks[name]["detail"]) for name in CHECKS
                    if name in checks and not checks[name]["ok"]]
        result = {"changed": self.changed, "healthy": not problems, "checks": checks,
                  "remediation": self.remediation, "needs_attention": None}
        if not problems:
            return result
        words = "; ".join(problems)
        if self.remediation:
            words += " (after: %s)" % ", ".join(self.remediation)
        attention = {"reason": words, "since": now()}
        result.update(needs_attention=attention, changed=True)
        if not self.check_mode:
            self.ledger.write(self.gateway, dict(self.ledger.read(self.gateway), needs_attention=attention))
        raise StageError("%s: unhealthy: %s. It %s needs_attention in the ledger: later runs leave it alone until it "
                         "is looked at and cleared (clear_attention=true)"
                         % (self.gateway, words, "would be marked" if self.check_mode else "is marked"), STAGE,
                         **dict(result, gateway=self.gateway))

    @staticmethod
    def _healthy(checks):
        return all(check["ok"] for check in checks.values())

    # --- reading the unit -------------------------------------------------------------

    def _session(self, pinned):
        return session_from_params(self.params, host_key=pinned, label=self.gateway)

    def _checks(self, record, pinned):
        """Every check, from one round trip to the unit (those that need the unit fail with the reason when it
        cannot be reached)."""
        self.progress.set("checking")
        checks = {"tunnel": self._tunnel_check()}
        try:
            with self._session(pinned) as session:
                before = self.clock()
                sections = read_sections(session, READ_COMMANDS, sudo=True)
                after = self.clock()
        except JumpFailed as exc:
            # the way in failed, not the gateway: nothing is known of it, and it is not marked
            raise StageError("%s: %s (stage %s)" % (self.gateway, exc.message, STAGE), STAGE, gateway=self.gateway)
        except HostKeyMismatch as exc:
            checks.update(reachable=_check(True, detail="answers"),
                          host_key=_check(False, key_fingerprint(exc.seen), "it offers %s, the ledger pinned %s: "
                                          "another unit answers on its tunnel, or it was re-flashed; no password "
                                          "was sent" % (key_fingerprint(exc.seen),
                                                        ", ".join(key_fingerprint(key) for key in pinned))))
            return checks
        except TunnelClosed as exc:
            checks["reachable"] = _check(False, detail=exc.reason(self.gateway))
            return checks
        except DeviceSSHError as exc:
            checks["reachable"] = _check(False, detail=exc.reason(self.gateway))
            return checks
        checks.update(reachable=_check(True, detail="answers through %s" % (
            "the jumphost" if self.params.get("jump_host") else "%s:%d" % (self.params["address"], self.params["port"]))),
            host_key=_check(True, detail="as pinned"))
        checks.update(self._read_checks(record, sections, before, after))
        return checks

    def _tunnel_check(self):
        """What the jumphost said of the gateway's tunnel (``tunnel``: ``jumphost_tunnels``' entry), if given."""
        listing = self.params.get("tunnel")
        if not listing:
            return _check(True, detail="not asked of the jumphost")
        if listing.get("registered") is False:
            return _check(False, False, "the jumphost has no registration of it (no account or key for its tunnel)")
        others = listing.get("port_held_by_other_uid") or []
        if others:
            return _check(False, others, "its tunnel port on the jumphost is held by another account (uid %s): "
                                         "something else listens where the gateway should" % ", ".join(
                                             str(uid) for uid in others))
        if not listing.get("listening"):
            return _check(False, False, "its tunnel port does not listen on the jumphost", remediable=False)
        if listing.get("keepalive_listening") is False:
            return _check(False, True, "its tunnel listens, but its keepalive port does not: autossh cannot tell "
                                       "when the tunnel breaks", remediable=True)
        return _check(True, True, "listening, owned by its account")

    def _read_checks(self, record, sections, before, after):
        version_text, eui_text, forwarder_text, date_text, uptime_text = sections[:5]
        checks = {}
        lines = version_text.splitlines()
        version = lines[0].split()[-1] if lines and lines[0].startswith("mLinux") and lines[0].split()[1:] else None
        expected = self.params.get("expected_mlinux_version") or record.get("mlinux_version")
        checks["mlinux_version"] = self._compare("mlinux_version", version, expected, "mLinux")
        eui = (eui_text.splitlines() or [""])[0].strip().lower() or None
        checks["lora_eui"] = self._compare("lora_eui", eui, (record.get("identity") or {}).get("lora_eui"),
                                           "LoRa EUI")
        checks["forwarder"] = self._forwarder_check(forwarder_text)
        checks["clock"] = self._clock_check(_number(date_text), before, after)
        free = dict(zip(FREE_SPACE_MOUNTS, (_free_kib(text) for text in sections[5:])))
        unknown = [path for path, kib in free.items() if kib is None]
        low = ["%s %d KiB" % (path, kib) for path, kib in free.items()
               if kib is not None and kib < self.params["min_free_mib"] * 1024]
        if unknown:
            checks["free_space"] = _check(False, free, "df did not say how much room %s has" % " and ".join(unknown))
        else:
            checks["free_space"] = _check(not low, free, "low: %s free (under %d MiB)" % (", ".join(low),
                                          self.params["min_free_mib"]) if low else "enough")
        uptime = _number(uptime_text)
        checks["uptime"] = _check(uptime is not None, uptime,
                                  "up %d s" % uptime if uptime is not None else "no /proc/uptime answer")
        return checks

    def _compare(self, name, seen, expected, what):
        try:
            checked(name, seen)
        except DeviceValueError:
            return _check(False, None, "the unit answered %s, which is no %s" % (shown(seen), what))
        if seen is None:
            return _check(False, None, "the unit did not say its %s" % what)
        if expected and seen != expected:
            return _check(False, seen, "%s %s, but %s was provisioned as %s: re-flashed or replaced? Find out before "
                                       "make apply" % (what, seen, self.gateway, expected))
        return _check(True, seen, "%s %s" % (what, seen))

    @staticmethod
    def _forwarder_check(text):
        words = (text.splitlines() or [""])[0].split()
        if len(words) != 2 or words[0] not in dict(FORWARDERS) or words[1] not in ("running", "stopped"):
            return _check(True, None, "no packet forwarder installed (make apply installs it)")
        if words[1] == "running":
            return _check(True, words[0], "%s running" % words[0])
        return _check(False, words[0], "%s is not running" % words[0], remediable=True)

    def _clock_check(self, seen, before, after):
        if seen is None:
            return _check(False, None, "the unit did not say its time")
        middle = (before + after) / 2.0
        off = int(round(seen - middle))
        allowed = self.params["clock_tolerance"] + (after - before) / 2.0
        if abs(off) <= allowed:
            return _check(True, off, "within %d s" % self.params["clock_tolerance"])
        return _check(False, off, "off by %d s (more than %d s)" % (off, self.params["clock_tolerance"]),
                      remediable=True)

    # --- remediation ------------------------------------------------------------------

    def _remediate(self, record, pinned, checks):
        """The steps, each only for what is still wrong and only while the unit answers; a check after each."""
        remediable = sorted(name for name, check in checks.items() if check["remediable"])
        if not remediable:
            return checks  # nothing a restart fixes (a key, a version, a tunnel that is not up, the disk)
        if self.check_mode:
            self.remediation.append("would remediate %s" % ", ".join(remediable))
            return checks
        for step in self._steps(checks):
            step(pinned)
        checks = self._checks(record, pinned)
        failing = [check for check in checks.values() if not check["ok"]]
        if not failing or not all(check["remediable"] for check in failing):
            return checks  # well again, or what is left no reboot fixes
        self._step("reboot")
        # /var/volatile is a tmpfs: a file left there before the reboot is gone once the unit booted again
        if not self._detached(pinned, "touch %s; ( sleep 1; reboot ) </dev/null >/dev/null 2>&1 &" % REBOOT_MARK,
                              "test -e %s && echo before || echo after" % REBOOT_MARK, "before"):
            self.remediation.append("no answer through its tunnel within %d s of the reboot"
                                    % self.params["reboot_timeout"])
        return self._checks(record, pinned)

    def _steps(self, checks):
        """The remedies for what is wrong and can be fixed on the unit, in the order they are tried."""
        steps = []
        if not checks["forwarder"]["ok"]:
            steps.append(self._restart_forwarder(checks["forwarder"]["value"]))
        if not checks["clock"]["ok"]:
            steps.append(self._set_clock)
        if not checks["tunnel"]["ok"]:
            steps.append(self._restart_tunnel)
        return steps

    def _step(self, words):
        self.progress.set(words)
        self.remediation.append(words)
        self.changed = True

    def _restart_forwarder(self, init_script):
        def step(pinned):
            self._step("restart the forwarder")
            # it is given time to fall over again before the check after this step looks at it
            self._on_unit(pinned, "/etc/init.d/%s restart >/dev/null 2>&1; sleep %d"
                          % (shlex.quote(init_script), self.params["forwarder_settle"]))
        return step

    def _set_clock(self, pinned):
        self._step("set the clock")
        self._on_unit(pinned, "ntpdate -bu %s >/dev/null 2>&1 && hwclock -wu >/dev/null 2>&1; true"
                      % shlex.quote(self.params["ntp_server"]))

    def _restart_tunnel(self, pinned):
        """Restarted from the unit, detached: it ends the session this runs over; done once autossh is another."""
        self._step("restart the tunnel")
        before = self._on_unit(pinned, "pidof autossh; true")
        if not self._detached(pinned, "( sleep 1; /etc/init.d/ssh_tunnel restart ) </dev/null >/dev/null 2>&1 &",
                              "pidof autossh; true", before):
            self.remediation.append("no answer through its tunnel within %d s of the restart"
                                    % self.params["reboot_timeout"])

    def _on_unit(self, pinned, command):
        """``command``'s output as root on the unit, or None when it could not be run (the check after the step
        says what became of the unit)."""
        try:
            with self._session(pinned) as session:
                return session.sudo("sh -c %s" % shlex.quote(command), timeout=120).stdout
        except JumpFailed as exc:
            raise StageError("%s: %s (stage %s)" % (self.gateway, exc.message, STAGE), STAGE, gateway=self.gateway)
        except DeviceSSHError:
            return None

    def _detached(self, pinned, command, probe, before):
        """``command`` started on the unit, then wait (up to reboot_timeout) until the unit answers through its
        tunnel again with ``probe`` saying something else than ``before``."""
        self._on_unit(pinned, command)
        self.progress.set("waiting for it to answer again")
        deadline = self.clock() + self.params["reboot_timeout"]
        while self.clock() < deadline:
            said = self._on_unit(pinned, probe)
            if said is not None and said.strip() and said.strip() != (before or "").strip():
                return True
            self.sleep(2)
        return False


def _gateway_health_options():
    spec = device_ssh_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        expected_mlinux_version=dict(type="str"),
        tunnel=dict(type="dict"),
        clock_tolerance=dict(type="int", default=60),
        min_free_mib=dict(type="int", default=2),
        remediate=dict(type="bool", default=False),
        forwarder_settle=dict(type="int", default=10),
        ntp_server=dict(type="str", default="pool.ntp.org"),
        reboot_timeout=dict(type="int", default=300),
        clear_attention=dict(type="bool", default=False),
    )
    spec.update(ledger_argument_spec())
    return spec


GATEWAY_HEALTH = StageModule(HealthCheck, _gateway_health_options(), requirements=[PARAMIKO_REQUIREMENT],
                             batch=True, ledger_stage=STAGE, required_one_of=[("password", "key_file")])
