# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The jump leg of ttn-multitech-cm's connections: the organisation's ``ssh_config`` as OpenSSH reads it.

``make ping`` and ``make apply`` reach a gateway as ``localhost:<tunnel port>`` through ``ProxyJump=jumphost``;
the jump leg takes its settings from the organisation's ``ssh_config`` only (options on ssh's command line apply
to the last leg), so in batch mode it needs the jumphost's host key in a known_hosts file that entry reads. What
the entry resolves to is asked of OpenSSH itself (``ssh -G``), never guessed from the file's text.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import re
import subprocess
import tempfile

from ansible_collections.lorawan.conduit.plugins.module_utils._files import FileVersionCache
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import (
    KeyFormatError,
    known_hosts_name,
    parse_public_key,
)

KNOWN_HOSTS_NOTE = ("# The jumphost's host keys, as its sshd offers them (lorawan.conduit.ttn_inventory writes them;\n"
                    "# the organisation's ssh_config reads this file for the jump leg of make ping and make apply).\n")
_BLOCK = re.compile(r"\s*(host|match)(\s*=\s*|\s+)(.*)", re.IGNORECASE)
# what ssh -G and ssh-keygen -F say of a file, asked once per version of it: a batch asks for each of its gateways
_ASKED = FileVersionCache()


class JumpLegError(ValueError):
    """The jump leg cannot be pinned; the message says what to change."""


def ssh_settings(ssh_config, host):
    """``{option: value}`` (lower-case names) that ``ssh -G -F ssh_config host`` resolves."""
    try:
        done = subprocess.run(["ssh", "-G", "-F", ssh_config, host], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, timeout=30)
    except OSError as exc:
        raise JumpLegError("cannot run OpenSSH's ssh (%s): Ansible needs it to reach the gateways" % exc)
    if done.returncode != 0:
        raise JumpLegError("ssh -G -F %s %s refused the file: %s"
                           % (ssh_config, host, done.stderr.decode("utf-8", "replace").strip()))
    settings = {}
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        name, _sep, value = line.partition(" ")
        settings.setdefault(name.lower(), value.strip())
    return settings


def lookup_name(settings):
    """The name ssh looks the host's key up under: its HostKeyAlias, else its HostName (``[name]:port`` off 22)."""
    alias = settings.get("hostkeyalias")
    if alias and alias != "none":
        return alias
    return known_hosts_name(settings["hostname"], settings.get("port") or 22)


def _known_entries(path, name):
    """The lines of known_hosts file ``path`` that stand for ``name`` (hashed ones too, as ssh-keygen finds them):
    ``[(line number, marker or "", "type base64")]``."""
    if not os.path.isfile(path):
        return []
    return _ASKED.get(path, ("ssh-keygen -F", name), lambda: _keygen_found(path, name))


def _keygen_found(path, name):
    done = subprocess.run(["ssh-keygen", "-F", name, "-f", path], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, timeout=30)
    found, number = [], 0
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        match = re.match(r"# Host .* found: line (\d+)", line)
        if match:
            number = int(match.group(1))
            continue
        fields = line.split()
        marker = fields.pop(0) if fields and fields[0].startswith("@") else ""
        if len(fields) >= 3:
            found.append((number, marker, " ".join(fields[1:3])))
    return found


def _files(value):
    return [os.path.expanduser(part) for part in (value or "").split() if part != "none"]


def _quoted(path):
    text = path.replace("%", "%%")
    return '"%s"' % text if any(char.isspace() for char in text) else text


def with_known_hosts_file(text, host, path):
    """``text`` (an ssh_config) with ``UserKnownHostsFile path`` in the ``Host`` entry that names ``host`` (after
    its last setting, indented like it), or in a new entry for ``host`` at the end; every other line kept."""
    lines = text.splitlines(True) if text else []
    start = None
    for number, line in enumerate(lines):
        match = _BLOCK.match(line)
        if match and match.group(1).lower() == "host" and host in match.group(3).split("#")[0].split():
            start = number
            break
    if start is None:
        ending = "" if not lines or lines[-1].endswith("\n") else "\n"
        return text + ending + "\nHost %s\n    UserKnownHostsFile %s\n" % (host, _quoted(path))
    last = start
    for number in range(start + 1, len(lines)):
        if _BLOCK.match(lines[number]):
            break
        if lines[number].strip() and not lines[number].lstrip().startswith("#"):
            last = number
    indent = re.match(r"\s*", lines[last]).group(0) if last != start else "    "
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, "%sUserKnownHostsFile %s\n" % (indent or "    ", _quoted(path)))
    return "".join(lines)


def _settings_of_text(text, host, like):
    """``ssh_settings`` for ``text`` as if it were the file ``like`` (Include paths resolve the same way)."""
    handle, temp = tempfile.mkstemp(prefix="lorawan-conduit-ssh_config.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        return ssh_settings(temp, host)
    except JumpLegError as exc:
        raise JumpLegError(str(exc).replace(temp, like + " (as it would be)"))
    finally:
        os.unlink(temp)


def jump_leg_plan(ssh_config, host, host_keys, read):
    """What pins ``host_keys`` (``type base64`` each) for the jump leg ``host`` of ``ssh_config``:
    ``[(path, text before or None, text after)]``, empty when a file that entry reads already holds one of them.
    ``read(path)`` gives a file's text or None. A file that holds another key for the jumphost is a JumpLegError
    (ssh would refuse the connection: a jumphost rebuilt, or not the one the gateways use)."""
    wanted = []
    for key in host_keys:
        try:
            wanted.append(parse_public_key(key).text(comment=""))
        except KeyFormatError as exc:
            raise JumpLegError("the jumphost's host key %r is not a public key (%s)" % (key, exc))
    settings = _ASKED.get(ssh_config, ("ssh -G", host), lambda: ssh_settings(ssh_config, host))
    name = lookup_name(settings)
    files = _files(settings.get("userknownhostsfile")) + _files(settings.get("globalknownhostsfile"))
    stale = []
    for path in files:
        for number, marker, key in _known_entries(path, name):
            if marker or key in wanted:
                return []  # pinned already (or through a certificate authority the operator keeps)
            stale.append("%s line %d" % (path, number))
    if stale:
        raise JumpLegError("%s holds another host key for %s (the jumphost %s in %s) than its sshd offers: ssh would "
                           "refuse the jump leg. If the jumphost was rebuilt, remove it (ssh-keygen -R '%s' -f <file>) "
                           "and run again" % (", ".join(stale), name, host, ssh_config, name))
    ours = os.path.join(os.path.dirname(os.path.abspath(ssh_config)), "known_hosts")
    before = read(ours)
    after = (before if before else KNOWN_HOSTS_NOTE)
    after += ("" if after.endswith("\n") else "\n") + "".join("%s %s\n" % (name, key) for key in wanted)
    plan = [(ours, before, after)]
    if ours not in _files(settings.get("userknownhostsfile")):
        config_before = read(ssh_config) or ""
        config_after = with_known_hosts_file(config_before, host, ours)
        if ours not in _files(_settings_of_text(config_after, host, ssh_config).get("userknownhostsfile")):
            raise JumpLegError("%s sets UserKnownHostsFile for %s before its own entry: add %s to that setting, "
                               "then run again" % (ssh_config, host, ours))
        plan.append((ssh_config, config_before, config_after))
    return plan
