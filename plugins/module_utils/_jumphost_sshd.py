# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the jumphost's sshd lets the gateways' accounts do beyond their key line. Runs on the jumphost, as root.

The key line's ``restrict,port-forwarding,permitlisten,permitopen`` confines TCP forwarding only: ``permitlisten``
and ``permitopen`` say nothing about Unix sockets, so a gateway's key could still listen on, or connect to, any
socket path its account may create or open (``ssh -R /path:host:port``, ``ssh -L port:/path``). A ``Match Group``
block for the organisation's gateway group, kept in the sshd configuration, turns that off together with what
``restrict`` already refuses (agent, X11, tty, tun devices, ``~/.ssh/rc``), so an operator's later line without
``restrict`` stays confined too.

The block goes before the file's first ``Match`` (sshd takes the first value a connection matches), is checked
with ``sshd -t`` before it is written and with ``sshd -T -C`` for a real account of the group, and the running
sshd re-reads its configuration (SIGHUP) only when the file changed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import re
import signal
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError

STAGE = "register"
# what ``sshd -T`` prints for each setting of the block (keyword, value)
CONFINED = (
    ("AllowStreamLocalForwarding", "no"),
    ("AllowAgentForwarding", "no"),
    ("X11Forwarding", "no"),
    ("PermitTTY", "no"),
    ("PermitTunnel", "no"),
    ("PermitUserRC", "no"),
    ("GatewayPorts", "no"),
)
_MATCH = re.compile(r"\s*match\s", re.IGNORECASE)
RELOAD_TIMEOUT = 10


def sshd_binary():
    return next((path for path in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(path)), "sshd")


def markers(group):
    return ("# BEGIN lorawan.conduit: confinement of the gateway accounts of group %s (managed by "
            "lorawan.conduit.jumphost_register; edits are replaced)" % group,
            "# END lorawan.conduit: confinement of group %s" % group)


def confinement_block(group):
    begin, end = markers(group)
    return [begin, "Match Group %s" % group] + ["    %s %s" % setting for setting in CONFINED] + [end]


def with_block(text, group):
    """``text`` with the group's block where it stood, or before the first ``Match`` and the comment lines just
    above it (at the end when there is none)."""
    begin, end = markers(group)
    lines = text.splitlines()
    block = confinement_block(group)
    if begin in lines and end in lines[lines.index(begin):]:
        first = lines.index(begin)
        last = lines.index(end, first)
        lines[first:last + 1] = block
    else:
        at = next((number for number, line in enumerate(lines) if _MATCH.match(line)), len(lines))
        while at > 0 and lines[at - 1].lstrip().startswith("#"):
            at -= 1  # the comment above a Match stays with it
        lines[at:at] = block
    return "".join(line + "\n" for line in lines)


def settings(text):
    """``{keyword: value}`` of ``sshd -T`` output (keywords lower-case, as sshd prints them)."""
    found = {}
    for line in text.splitlines():
        name, _sep, value = line.partition(" ")
        found.setdefault(name.lower(), value.strip())
    return found


class SshdConfinement:
    """Keeps the group's ``Match`` block in ``path`` (the configuration the jumphost's sshd runs with)."""

    def __init__(self, system, path, group, check_mode=False):
        self.system = system
        self.path = path
        self.group = group
        self.check_mode = check_mode
        self.sshd = sshd_binary()

    def ensure(self):
        """``(changed, diff)``; writes the file and makes sshd re-read it when the block was missing or edited.
        Nothing is written when sshd would reject the result."""
        target = os.path.realpath(self.path)  # a linked sshd_config is replaced where it lies; the link stays
        before = self.system.read_text(target)
        if before is None:
            raise StageError("the sshd configuration %s does not exist: set jumphost_register_sshd_config to the "
                             "file the jumphost's sshd runs with" % self.path, STAGE)
        after = with_block(before, self.group)
        if after == before:
            return False, None
        diff = {"before_header": target, "after_header": target, "before": before, "after": after}
        if self.check_mode:
            return True, diff
        uid, gid, mode = self.system.ownership(target)
        candidate = self.system.write_temp(target, after, uid, gid, mode)
        try:
            self._syntax(candidate)
            self.system.replace(candidate, target)
        except BaseException:
            self.system.remove(candidate)
            raise
        self._reload()
        return True, diff

    def _syntax(self, candidate):
        status, out, err = self.system.run_quietly([self.sshd, "-t", "-f", candidate])
        if status != 0:
            raise StageError("sshd rejects %s once the gateways' Match block is added (%s): nothing was changed; "
                             "make `sshd -t -f %s` pass, then run again"
                             % (self.path, (err or out).strip(), self.path), STAGE)

    def verify(self, account):
        """Fail unless sshd, as configured now, confines ``account`` (a real member of the group)."""
        status, out, err = self.system.run_quietly(
            [self.sshd, "-T", "-f", self.path, "-C", "user=%s,host=gateway,addr=127.0.0.1" % account])
        if status != 0:
            raise StageError("sshd -T -C user=%s -f %s failed: %s" % (account, self.path, (err or out).strip()),
                             STAGE)
        found = settings(out)
        loose = ["%s %s" % (keyword, found.get(keyword.lower(), "(not printed)")) for keyword, value in CONFINED
                 if found.get(keyword.lower()) != value]
        if loose:
            raise StageError("the jumphost's sshd does not confine the gateway account %s: `sshd -T -C user=%s` "
                             "gives %s, though %s holds the Match block for group %s. An earlier Match block that "
                             "matches it (or an Include before ours) sets these: make it not match group %s, then "
                             "run again; until then no tunnel of this batch is set up"
                             % (account, account, ", ".join(loose), self.path, self.group, self.group), STAGE)

    def _reload(self):
        """SIGHUP to the sshd that runs (its PidFile), then wait until it listens again: sshd re-executes itself
        and refuses connections for that moment, and the stages after this one connect to it."""
        status, out, _err = self.system.run_quietly([self.sshd, "-T", "-f", self.path])
        pid = self.system.sshd_pid(settings(out).get("pidfile") if status == 0 else None)
        if pid is None:
            self.system.warn("%s now confines the gateway accounts, but no running sshd was found through its "
                             "PidFile: restart the jumphost's sshd so that it takes effect" % self.path)
            return
        before = self.system.listening_sockets(pid)
        os.kill(pid, signal.SIGHUP)
        deadline = time.time() + RELOAD_TIMEOUT
        while time.time() < deadline:
            now = self.system.listening_sockets(pid)
            if now and not now & before:
                return
            time.sleep(0.02)
        self.system.warn("sshd (PID %d) was told to re-read %s but did not listen anew within %d s: check that it "
                         "runs, and restart it so that the gateways' confinement takes effect"
                         % (pid, self.path, RELOAD_TIMEOUT))
