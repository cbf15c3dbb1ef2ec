# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root's keys and the reverse tunnel on an mLinux unit (the ``tunnel`` stage).

Everything lives under ``/var/config``, which survives firmware upgrades, with
the links ttn-multitech-cm's ``ssh_tunnel`` role makes (``/etc/default`` and
``/etc/init.d`` point into it, ``/home/root/.ssh`` too), so that ``make
apply`` later finds its own layout and changes nothing it does not own.

The unit is read first in one round trip; only what differs is changed, and
files are replaced whole (temp file, then ``mv``). A running tunnel is
restarted through the init script's detached ``do_restart``, so a session
riding on the tunnel survives it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import shlex

from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import (
    PARAMIKO_REQUIREMENT,
    DeviceSSHError,
    device_ssh_argument_spec,
    session_from_params,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_facts import read_sections
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, record_stage
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import (
    KeyFormatError,
    parse_authorized_keys,
    parse_public_key,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import StageModule

STAGE = "tunnel"
KEYS_DIR = "/var/config/home/root/.ssh"
ROOT_SSH = "/home/root/.ssh"
DEFAULTS = "/var/config/ssh_tunnel.default"
DEFAULTS_LINK = "/etc/default/ssh_tunnel"
SCRIPT = "/var/config/init.d/ssh_tunnel"
SCRIPT_LINK = "/etc/init.d/ssh_tunnel"
RC_START, RC_STOP = 10, 50  # what ttn-multitech-cm registers, so `make apply` leaves the links alone

INIT_SCRIPT = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          ssh_tunnel
# Required-Start:    $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: Reverse SSH tunnel to the jumphost (autossh)
### END INIT INFO
# Installed by lorawan.conduit.gateway_tunnel in the layout of ttn-multitech-cm's
# ssh_tunnel role: this file and /var/config/ssh_tunnel.default survive upgrades.

[ -r /etc/default/ssh_tunnel ] && . /etc/default/ssh_tunnel
[ -x "$DAEMON" ] || exit 0
if [ -z "$LOCAL_PORT" ] || [ -z "$REMOTE_HOST" ] || [ -z "$REMOTE_PORT" ] || [ -z "$REMOTE_USER" ]; then
    echo "ssh_tunnel: set LOCAL_PORT, REMOTE_HOST, REMOTE_PORT and REMOTE_USER in /etc/default/ssh_tunnel" >&2
    exit 1
fi
NAME=$(basename "$DAEMON")
ARGS="$DAEMON_ARGS -N -T -R $REMOTE_PORT:localhost:$LOCAL_PORT -i $SSH_KEY -p ${SSH_PORT:-22} $REMOTE_USER@$REMOTE_HOST"

running() {
    pgrep -x "$NAME" >/dev/null 2>&1
}

case "$1" in
    start)
        running || start-stop-daemon --start --quiet --exec "$DAEMON" -- $ARGS
        ;;
    stop)
        start-stop-daemon --stop --quiet --exec "$DAEMON"
        exit 0
        ;;
    restart|reload|force-reload)
        # detached, so that a session riding on the tunnel outlives the restart
        nohup "$0" do_restart >/dev/null 2>&1 &
        ;;
    do_restart)
        "$0" stop
        sleep 1
        "$0" start
        ;;
    status)
        if running; then echo "$NAME is running"; else echo "$NAME is not running"; exit 3; fi
        ;;
    *)
        echo "Usage: $0 {start|stop|restart|status}" >&2
        exit 1
        ;;
esac
"""


def tunnel_defaults(params):
    """``/var/config/ssh_tunnel.default`` as ttn-multitech-cm templates it."""
    lines = [
        "# Written by lorawan.conduit.gateway_tunnel (the format of ttn-multitech-cm's ssh_tunnel role).",
        "DAEMON=%s" % params["daemon"],
        "LOCAL_PORT=%d" % params["local_port"],
        "REMOTE_HOST=%s" % params["remote_host"],
        "REMOTE_USER=%s" % params["remote_user"],
        "REMOTE_PORT=%d" % params["remote_port"],
        "SSH_KEY=%s" % params["ssh_key"],
        "SSH_PORT=%d" % params["remote_ssh_port"],
        'DAEMON_ARGS="-f -M %d -o ServerAliveInterval=30 -o StrictHostKeyChecking=no"' % params["keepalive_port"],
    ]
    return "\n".join(lines) + "\n"


class TunnelInstaller:
    """``gateway_tunnel``: root's keys, the tunnel files, the boot links, the running tunnel."""

    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.gateway = params["name"]
        self.ledger = Ledger(params["ledger_dir"]) if params.get("ledger_dir") else None
        self.actions = []
        self.warnings = []
        self.session = None
        self.keys = []
        for text in params["authorized_keys"]:
            try:
                self.keys.append(parse_public_key(text))
            except KeyFormatError as exc:
                self.fail("authorized_keys holds %r, which is not a public key (%s)" % (text[:40], exc))
        if not self.keys:
            self.fail("authorized_keys is empty: give at least the provisioning key, or the unit is unreachable "
                      "for root after this stage")
        for name in ("remote_host", "remote_user"):
            if not params[name] or any(char.isspace() or char in "\"'$`\\" for char in params[name]):
                self.fail("%s %r cannot go into /etc/default/ssh_tunnel" % (name, params[name]))

    def fail(self, message, **context):
        raise StageError("%s: %s" % (self.gateway, message), STAGE, gateway=self.gateway, **context)

    def _act(self, text):
        self.actions.append(text)
        return not self.check_mode

    def _root(self, command, stdin=b""):
        return self.session.check("sh -c %s" % shlex.quote(command), sudo=True, stdin=stdin)

    def _put(self, path, text, mode):
        self._root("cat > {0}.new && chmod {1:o} {0}.new && chown root:root {0}.new && mv {0}.new {0}"
                   .format(path, mode), stdin=text.encode("utf-8"))

    def run(self):
        record = self.ledger.read(self.gateway) if self.ledger else None
        pinned = list(((record or {}).get("host_keys") or {}).values()) or \
            ([self.params["host_key"]] if self.params.get("host_key") else [])
        if self.ledger and "identify" not in record["stages"]:
            self.fail("the ledger has no identification of it yet: run gateway_facts first (it pins the host keys)")
        try:
            self.session = session_from_params(self.params, host_key=pinned, label=self.gateway)
            with self.session:
                state = self._read()
                self._keys(state)
                changed_config = self._tunnel_files(state)
                self._start(state, changed_config)
        except DeviceSSHError as exc:
            self.fail("%s (stage %s)" % (exc, STAGE))
        result = {"changed": bool(self.actions), "actions": self.actions, "warnings": self.warnings,
                  "tunnel": {"remote_host": self.params["remote_host"], "remote_user": self.params["remote_user"],
                             "remote_port": self.params["remote_port"],
                             "keepalive_port": self.params["keepalive_port"]}}
        if self.ledger:
            updated = dict(record, jumphost={"host": self.params["remote_host"],
                                             "port": self.params["remote_ssh_port"],
                                             "user": self.params["remote_user"],
                                             "tunnel_port": self.params["remote_port"],
                                             "keepalive_port": self.params["keepalive_port"]})
            updated = record_stage(updated, STAGE, "done", tunnel_port=self.params["remote_port"])
            if updated != record and not self.check_mode:
                self.ledger.write(self.gateway, updated)
            result["ledger"] = self.ledger.path(self.gateway)
        return result

    def _read(self):
        names = ["root_ssh_link", "root_ssh_dir", "root_ssh_files", "root_ssh_keys", "keys_dir", "keys",
                 "keys_mode", "defaults", "defaults_mode", "defaults_link", "script", "script_mode", "script_link",
                 "rc_links", "running"]
        commands = [
            "readlink %s" % ROOT_SSH,
            "test -d %s && test ! -L %s && echo directory" % (ROOT_SSH, ROOT_SSH),
            "ls -a %s" % ROOT_SSH,
            "cat %s/authorized_keys" % ROOT_SSH,
            "stat -c '%%a %%U %%G' %s" % KEYS_DIR,
            "cat %s/authorized_keys" % KEYS_DIR,
            "stat -c '%%a %%U %%G' %s/authorized_keys" % KEYS_DIR,
            "cat %s" % DEFAULTS,
            "stat -c %%a %s" % DEFAULTS,
            "readlink %s" % DEFAULTS_LINK,
            "cat %s" % SCRIPT,
            "stat -c %%a %s" % SCRIPT,
            "readlink %s" % SCRIPT_LINK,
            "ls /etc/rc5.d",
            "pgrep -x %s" % self.params["daemon"].rsplit("/", 1)[-1],
        ]
        return dict(zip(names, read_sections(self.session, commands, sudo=True)))

    def _keys(self, state):
        migrate = state["root_ssh_dir"] == "directory"
        if state["keys_dir"] != "700 root root" and self._act("create %s (700, root)" % KEYS_DIR):
            self._root("mkdir -p -m 700 {0} && chmod 755 /var/config/home && chmod 700 /var/config/home/root {0} "
                       "&& chown root:root /var/config/home/root {0}".format(KEYS_DIR))
        lines = [line.text for line in parse_authorized_keys(state["keys"])] if state["keys"] else []
        present = [line.key for line in parse_authorized_keys(state["keys"]) if line.is_key]
        if migrate:
            for line in parse_authorized_keys(state["root_ssh_keys"]):
                if line.is_key and not any(line.key.same_as(key) for key in present):
                    lines.append(line.text)
                    present.append(line.key)
        missing = [key for key in self.keys if not any(key.same_as(other) for other in present)]
        lines += [key.text() for key in missing]
        if missing or (migrate and lines != [line.text for line in parse_authorized_keys(state["keys"])]):
            what = "add %d key(s) to root's authorized_keys" % len(missing) if missing else \
                "merge the keys of the old %s" % ROOT_SSH
            if self._act(what):
                self._put(KEYS_DIR + "/authorized_keys", "\n".join(lines) + "\n", 0o600)
        elif state["keys_mode"] not in ("", "600 root root") and self._act("set authorized_keys to 600 root"):
            self._root("chmod 600 {0}/authorized_keys && chown root:root {0}/authorized_keys".format(KEYS_DIR))
        if migrate:
            others = [name for name in state["root_ssh_files"].split()
                      if name not in (".", "..", "authorized_keys")]
            kept = ", ".join(others) or "its keys"
            if self._act("move %s into %s (keeping %s) and link it" % (ROOT_SSH, KEYS_DIR, kept)):
                for name in others:
                    self._root("test -e {1}/{2} || cp -p {0}/{2} {1}/{2}".format(ROOT_SSH, KEYS_DIR, name))
                self._root("rm -rf {0} && ln -s {1} {0}".format(ROOT_SSH, KEYS_DIR))
        elif state["root_ssh_link"] != KEYS_DIR and self._act("link %s to %s" % (ROOT_SSH, KEYS_DIR)):
            self._root("rm -f {0} && ln -s {1} {0}".format(ROOT_SSH, KEYS_DIR))

    def _tunnel_files(self, state):
        changed = False
        wanted = tunnel_defaults(self.params)
        for path, text, mode, current, current_mode, link, current_link in (
                (DEFAULTS, wanted, 0o644, state["defaults"], state["defaults_mode"], DEFAULTS_LINK,
                 state["defaults_link"]),
                (SCRIPT, INIT_SCRIPT, 0o755, state["script"], state["script_mode"], SCRIPT_LINK,
                 state["script_link"])):
            if current != text.strip() and self._act("write %s" % path):
                self._root("mkdir -p %s" % path.rsplit("/", 1)[0])
                self._put(path, text, mode)
            elif current == text.strip() and current_mode != "%o" % mode and self._act("chmod %o %s" % (mode, path)):
                self._root("chmod %o %s" % (mode, path))
            changed = changed or current != text.strip()
            if current_link != path and self._act("link %s to %s" % (link, path)):
                self._root("rm -f {0} && ln -s {1} {0}".format(link, path))
        if "ssh_tunnel" not in state["rc_links"] and \
                self._act("enable ssh_tunnel at boot (update-rc.d defaults %d %d)" % (RC_START, RC_STOP)):
            self._root("update-rc.d ssh_tunnel defaults %d %d" % (RC_START, RC_STOP))
        return changed

    def _start(self, state, changed_config):
        running = bool(state["running"])
        if running and not changed_config:
            return
        if self.params["time_sync"] and not self.check_mode:
            synced = self.session.sudo("ntpdate -ub %s" % shlex.quote(self.params["ntp_server"]), timeout=60)
            if synced.status != 0:
                self.warnings.append("%s: could not set the clock from %s (%s); the tunnel is started anyway, but a "
                                     "clock far off can break TLS on the unit later"
                                     % (self.gateway, self.params["ntp_server"],
                                        (synced.stderr or synced.stdout).strip()[-200:]))
        if running:
            if self._act("restart the tunnel (detached, sessions on it survive)"):
                self._root("%s restart" % SCRIPT_LINK)
        elif self._act("start the tunnel"):
            self._root("%s start" % SCRIPT_LINK)


def _gateway_tunnel_options():
    spec = device_ssh_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        ledger_dir=dict(type="path"),
        host_key=dict(type="str", no_log=False),
        authorized_keys=dict(type="list", elements="str", required=True, no_log=False),
        remote_host=dict(type="str", required=True),
        remote_ssh_port=dict(type="int", default=22),
        remote_user=dict(type="str", required=True),
        remote_port=dict(type="int", required=True),
        keepalive_port=dict(type="int", required=True, no_log=False),
        local_port=dict(type="int", default=22),
        daemon=dict(type="path", default="/usr/bin/autossh"),
        ssh_key=dict(type="path", default="/etc/ssh/ssh_host_rsa_key", no_log=False),
        time_sync=dict(type="bool", default=True),
        ntp_server=dict(type="str", default="pool.ntp.org"),
    )
    return spec


GATEWAY_TUNNEL = StageModule(TunnelInstaller, _gateway_tunnel_options(), requirements=[PARAMIKO_REQUIREMENT],
                             required_one_of=[("password", "key_file")])
