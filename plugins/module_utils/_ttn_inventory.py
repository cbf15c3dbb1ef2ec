# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The organisation's ttn-multitech-cm inventory: ``host_vars/<gateway>.yml`` and ``hosts``.

The files belong to the operator. A host_vars file is edited line by line:
only the keys the pipeline owns are replaced (a trailing comment on such a
line is kept), missing ones are appended, and every other line stays byte
for byte; the result is parsed again and compared with the original before
anything is written. The ``hosts`` file gets one line in one group, under a
lock, only when the gateway stands in no group yet. Writes are atomic.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import os
import re
import shlex
import shutil
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._device_values import (
    DeviceValueError,
    checked,
    checked_identity,
    shown,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._files import FileVersionCache, FolderLock, write_atomic
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import Ledger, ledger_argument_spec, record_stage
from ansible_collections.lorawan.conduit.plugins.module_utils._org_ssh import JumpLegError, jump_leg_plan
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import KeyFormatError, parse_public_key
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import StageModule
from ansible_collections.lorawan.conduit.plugins.module_utils._yaml import SafeLoader

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

STAGE = "inventory"
# The Things Stack gateway ID rule; ttn-multitech-cm uses `hostname` as the gateway ID.
GATEWAY_ID = re.compile(r"[a-z0-9](?:-?[a-z0-9]){2,}\Z")
# What ttn-multitech-cm needs org-wide and has no default for (reference: ttn-multitech-cm.md §0.4).
ORG_VARS = ("ansible_user", "ttn_user", "authorized_keys", "ssh_tunnel_remote_host", "ssh_tunnel_ssh_port",
            "ssh_tunnel_gateway_user_on_jumphost", "forwarder_variant", "forwarder_version", "timezone", "region",
            "router_v3", "gateway_owner", "gateway_collaborators", "contact_email", "ntp_servers")
# keys that mark the file of a host_vars folder holding what the pipeline writes
OWNED_MARKERS = ("hostname", "ansible_port", "ssh_tunnel_remote_port", "ssh_tunnel_keepalive_base_port")
# the order of a new file: who it is, where it stands, how Ansible reaches it, what the pipeline read
KEY_ORDER = ("hostname", "description", "latitude", "longitude", "altitude", "eth0_type", "ansible_host",
             "ansible_port", "ansible_user", "ssh_tunnel_remote_host", "ssh_tunnel_ssh_port", "ssh_tunnel_remote_port",
             "ssh_tunnel_keepalive_base_port", "ssh_tunnel_local_port", "ssh_tunnel_gateway_user_on_jumphost",
             "mlinux_version")
NEW_FILE_NOTE = ("# Written by lorawan.conduit.ttn_inventory. Edit freely: on later runs it updates only the keys it\n"
                 "# owns (hostname, ansible_*, ssh_tunnel_*, mlinux_version, lorawan_conduit_*), never the others.\n"
                 "# Set the position before make apply: latitude/longitude in degrees, altitude a whole number\n"
                 "# of metres (-1: unknown).")
_TOP_KEY = re.compile(r"([A-Za-z_][\w.-]*)\s*:(?:\s|$)")
_SECTION = re.compile(r"\[([^\]\s]+)\]\s*(?:[#;].*)?\Z")


def _render(key, value):
    """``key: value`` as one YAML line, quoted where YAML needs it (quotes, '#', ':', non-ASCII all survive)."""
    text = yaml.safe_dump({key: value}, default_flow_style=True, allow_unicode=True, width=1 << 30)
    return text.strip()[1:-1] if text.strip().startswith("{") else text.strip()


def _yaml_error(path, exc):
    mark = getattr(exc, "problem_mark", None)
    where = "%s line %d" % (path, mark.line + 1) if mark is not None else path
    reason = getattr(exc, "problem", None) or str(exc)
    return "%s: %s" % (where, reason)


class TaggedValue(object):
    """A value written under one of Ansible's YAML tags (``!vault``, ``!unsafe``): read as it stands, never
    decrypted or evaluated, and compared by tag and text, so that a file holding one can be edited around it."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, TaggedValue) and (self.tag, self.value) == (other.tag, other.value)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.tag, repr(self.value)))

    def __repr__(self):
        return "%s <%d characters>" % (self.tag, len(repr(self.value)))


def _construct_tagged(loader, node):
    if isinstance(node, yaml.ScalarNode):
        return TaggedValue(node.tag, loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return TaggedValue(node.tag, loader.construct_sequence(node, deep=True))
    return TaggedValue(node.tag, loader.construct_mapping(node, deep=True))


if yaml is not None:
    class InventoryLoader(SafeLoader):  # pylint: disable=too-many-ancestors
        """The collection's safe loader, plus Ansible's ``!vault`` and ``!unsafe`` as :class:`TaggedValue`."""

    InventoryLoader.add_constructor("!vault", _construct_tagged)
    InventoryLoader.add_constructor("!unsafe", _construct_tagged)


def load_inventory_yaml(text):
    """What Ansible reads from an inventory YAML file, tagged values kept opaque."""
    return yaml.load(text, Loader=InventoryLoader)  # nosec - a safe loader with two inert constructors


def load_mapping(path, text):
    """The YAML mapping in ``text``; a StageError naming the file, the line and the reason otherwise."""
    try:
        data = load_inventory_yaml(text)
    except yaml.YAMLError as exc:
        raise StageError("%s; fix the file (nothing was written)" % _yaml_error(path, exc), STAGE, file=path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StageError("%s: holds a %s, not a mapping of variables; fix the file (nothing was written)"
                         % (path, type(data).__name__), STAGE, file=path)
    return data


class HostVarsEditor:
    """Update the owned keys of one host_vars file, leaving every other line as it is."""

    def __init__(self, path, text):
        self.path = path
        self.text = text or ""
        self.data = load_mapping(path, self.text)
        self.lines = self.text.splitlines()

    def _blocks(self):
        """``{key: (first, end)}``: the lines of each top-level key (trailing comments and blanks excluded)."""
        starts = []
        for number, line in enumerate(self.lines):
            match = _TOP_KEY.match(line)
            if match:
                starts.append((match.group(1), number))
        blocks = {}
        for index, (key, first) in enumerate(starts):
            end = starts[index + 1][1] if index + 1 < len(starts) else len(self.lines)
            while end - 1 > first and (not self.lines[end - 1].strip() or self.lines[end - 1].startswith("#")
                                       or self.lines[end - 1].strip() in ("---", "...")):
                end -= 1
            blocks[key] = (first, end)
        return blocks

    def _comment_of(self, key, line):
        """The trailing comment of a one-line ``key: value``, found where the part before it still parses the same."""
        for match in re.finditer(r"\s+#", line):
            try:
                if load_inventory_yaml(line[:match.start()]) == {key: self.data[key]}:
                    return line[match.start():]
            except yaml.YAMLError:
                continue
        return ""

    def apply(self, owned, seeded):
        """New text with ``owned`` set, and ``seeded`` too when the file is new; returns (text, changed keys)."""
        blocks = self._blocks()
        replace = {}
        append = []
        changed = []
        # placeholders only go into a new file: an operator's file gets nothing it did not ask for
        wanted = list(owned.items()) + ([] if self.text.strip() else list(seeded.items()))
        wanted.sort(key=lambda item: KEY_ORDER.index(item[0]) if item[0] in KEY_ORDER else len(KEY_ORDER))
        for key, value in wanted:
            if key in self.data and self.data[key] == value and type(self.data[key]) is type(value):
                continue
            changed.append(key)
            if key in self.data and key in blocks:
                first, end = blocks[key]
                comment = self._comment_of(key, self.lines[first]) if end - first == 1 else ""
                replace[first] = (end, _render(key, value) + comment)
            elif key in self.data:
                raise StageError("%s: cannot find the line of %s to update it (is it set in a nested document?)"
                                 % (self.path, key), STAGE, file=self.path)
            else:
                append.append(_render(key, value))
        out = []
        number = 0
        while number < len(self.lines):
            if number in replace:
                end, line = replace[number]
                out.append(line)
                number = end
                continue
            out.append(self.lines[number])
            number += 1
        if out and out[-1].strip() == "...":
            tail = [out.pop()]
        else:
            tail = []
        if append and not self.lines:
            out = ["---", NEW_FILE_NOTE]
        out += append + tail
        text = "\n".join(out) + "\n" if out else ""
        self._verify(text, owned, seeded)
        return text, changed

    def _verify(self, text, owned, seeded):
        after = load_mapping(self.path, text)
        expected = dict(self.data)
        expected.update(owned)
        if not self.text.strip():
            expected.update(seeded)
        if after != expected:
            lost = sorted(key for key in set(expected) | set(after) if expected.get(key) != after.get(key))
            raise StageError("%s: an edit would have changed %s beyond what the pipeline owns; nothing was written "
                             "(please report this with the file)" % (self.path, ", ".join(lost)), STAGE,
                             path=self.path)


class HostsFile:
    """An INI ``hosts`` file: which groups list a host, and adding one host line to a group."""

    def __init__(self, path, text):
        self.path = path
        self.lines = (text or "").splitlines()
        self.sections = []  # [name, kind, header line or None, [host line numbers]]
        current = ["ungrouped", "hosts", None, []]
        self.sections.append(current)
        for number, raw in enumerate(self.lines):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                match = _SECTION.match(line)
                if not match:
                    self.fail(number, "a group header must look like [name], [name:children] or [name:vars]")
                name, _sep, kind = match.group(1).partition(":")
                if kind not in ("", "children", "vars"):
                    self.fail(number, "unknown section kind :%s (use :children or :vars)" % kind)
                current = [name, kind or "hosts", number, []]
                self.sections.append(current)
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                self.fail(number, "cannot split the line (%s)" % exc)
            if current[1] == "vars":
                if "=" not in line:
                    self.fail(number, "a line under [%s:vars] must be key=value" % current[0])
            elif current[1] == "children":
                if len(words) != 1:
                    self.fail(number, "a line under [%s:children] must be one group name" % current[0])
            else:
                for word in words[1:]:
                    if "=" not in word:
                        self.fail(number, "after the host name only key=value variables may follow, not %r" % word)
            current[3].append(number)

    def fail(self, number, reason):
        raise StageError("%s line %d: %s; fix the file (nothing was written)" % (self.path, number + 1, reason),
                         STAGE, file=self.path, line=number + 1)

    def groups_of(self, host):
        found = []
        for name, kind, _header, numbers in self.sections:
            if kind == "hosts" and any(shlex.split(self.lines[number], comments=True)[0] == host
                                       for number in numbers):
                found.append(name)
        return found

    def groups_of_file(self):
        """Every group the file names."""
        return set(section[0] for section in self.sections if section[2] is not None)

    def groups_under(self, parent="conduits"):
        """``parent`` and every group below it through ``[...:children]`` sections."""
        found, todo = set(), [parent]
        while todo:
            name = todo.pop()
            if name in found:
                continue
            found.add(name)
            section = self._section(name, "children")
            if section is not None:
                todo.extend(shlex.split(self.lines[number], comments=True)[0] for number in section[3])
        return found

    def _section(self, name, kind):
        for section in self.sections:
            if section[0] == name and section[1] == kind:
                return section
        return None

    def with_host(self, host, group, parent="conduits"):
        """The text with ``host`` added to ``group``; a missing group is made, as a child of ``parent``."""
        lines = list(self.lines)
        section = self._section(group, "hosts")
        if section is not None:
            after = section[3][-1] if section[3] else section[2]
            lines.insert(after + 1, host)
            return "\n".join(lines) + "\n"
        children = self._section(parent, "children")
        if group != parent and children is not None and \
                not any(self.lines[number].split()[0] == group for number in children[3]):
            lines.insert((children[3][-1] if children[3] else children[2]) + 1, group)
        while lines and not lines[-1].strip():
            lines.pop()
        block = ["[%s]" % group, host]
        if group != parent and children is None:
            block += ["", "[%s:children]" % parent, group]
        lines += ([""] if lines else []) + block
        return "\n".join(lines) + "\n"


class YamlHostsFile:
    """A YAML ``hosts`` inventory (Ansible's yaml plugin): which groups list a host, and adding one host line to a
    group's block-style ``hosts`` mapping. The text is edited where the parser says the mapping ends, so every
    other line, comment and value stays as it is; what cannot be edited that way is refused, naming the file."""

    def __init__(self, path, text, data=None):
        """``data``: ``text`` parsed already (by :func:`hosts_file`), else it is parsed here."""
        self.path = path
        self.text = text or ""
        try:
            self.data = load_inventory_yaml(self.text) if data is None else data
            self.root = yaml.compose(self.text, Loader=InventoryLoader)
        except yaml.YAMLError as exc:
            raise StageError("%s; fix the file (nothing was written)" % _yaml_error(path, exc), STAGE, file=path)

    @staticmethod
    def _walk(mapping):
        """``(name, group mapping node)`` of every group in ``mapping`` and below it through ``children``, depth
        first."""
        found = []
        for key, value in mapping.value:
            found.append((key.value, value))
            children = _child(value, "children") if isinstance(value, yaml.MappingNode) else None
            if isinstance(children, yaml.MappingNode):
                found.extend(YamlHostsFile._walk(children))
        return found

    def _groups(self):
        """Every group of the file, from the top-level ones down."""
        return self._walk(self.root) if isinstance(self.root, yaml.MappingNode) else []

    def groups_of(self, host):
        found = []
        for name, node in self._groups():
            hosts = _child(node, "hosts") if isinstance(node, yaml.MappingNode) else None
            if isinstance(hosts, yaml.MappingNode) and any(key.value == host for key, _value in hosts.value):
                found.append(name)
        return sorted(set(found), key=found.index)

    def groups_of_file(self):
        """Every group the file names."""
        return set(name for name, _node in self._groups())

    def groups_under(self, parent="conduits"):
        """``parent`` and every group below it through ``children``."""
        found = set()
        for name, node in self._groups():
            if name == parent:
                found.add(name)
                children = _child(node, "children") if isinstance(node, yaml.MappingNode) else None
                if isinstance(children, yaml.MappingNode):
                    found.update(child for child, _node in self._walk(children))
        return found

    def refuse(self, reason):
        raise StageError("%s: %s; add the gateway there yourself, or change the file (nothing was written)"
                         % (self.path, reason), STAGE, file=self.path)

    def with_host(self, host, group, parent="conduits"):
        """The text with ``host:`` added to ``group``'s ``hosts``; the group must exist with block-style hosts."""
        node = next((node for name, node in self._groups() if name == group), None)
        if not isinstance(node, yaml.MappingNode) or node.flow_style:
            self.refuse("this YAML inventory has no group %s in block style (under %s's children) to add %s to"
                        % (group, parent, host))
        lines = self.text.splitlines()
        hosts = _child(node, "hosts")
        if hosts is None or (isinstance(hosts, yaml.ScalarNode) and hosts.tag.endswith(":null")
                             and not hosts.value):
            key = next(key for key, _value in node.value if key.value == "hosts") if hosts is not None else None
            if key is None:
                self.refuse("group %s has no hosts: mapping" % group)
            at, column = key.start_mark.line + 1, key.start_mark.column + 2
        elif isinstance(hosts, yaml.MappingNode) and not hosts.flow_style and hosts.value:
            last_key = hosts.value[-1][0]
            column = last_key.start_mark.column
            at = last_key.start_mark.line + 1
            for number in range(at, len(lines)):  # past the last host's own lines (its variables, deeper)
                stripped = lines[number].strip()
                if stripped and not stripped.startswith("#"):
                    if len(lines[number]) - len(lines[number].lstrip()) <= column:
                        break
                    at = number + 1
        else:
            self.refuse("group %s's hosts are not a block-style mapping" % group)
        lines.insert(at, " " * column + host + ":")
        after = "\n".join(lines) + "\n"
        edited = YamlHostsFile(self.path, after)
        if group not in edited.groups_of(host) or _without(edited.data, group, host) != self.data:
            self.refuse("adding %s to %s would change more than that line" % (host, group))
        return after


def _child(mapping, name):
    return next((value for key, value in mapping.value if key.value == name), None)


def _without(data, group, host):
    """``data`` (a parsed YAML inventory) with ``host`` taken out of ``group``'s hosts again."""
    def walk(groups):
        for name, value in (groups or {}).items():
            if not isinstance(value, dict):
                continue
            if name == group and isinstance(value.get("hosts"), dict):
                value["hosts"].pop(host, None)
                if not value["hosts"]:
                    value["hosts"] = None
            walk(value.get("children"))
    walk(data)
    return data


def hosts_file(path, text):
    """The ``hosts`` file in the format it is in: YAML when it parses as a mapping (an INI file never does), INI
    otherwise."""
    try:
        data = load_inventory_yaml(text or "")
    except yaml.YAMLError:
        data = None
    return YamlHostsFile(path, text, data) if isinstance(data, dict) else HostsFile(path, text)


def backup_copy(path):
    """``<path>.<pid>.<local time>~`` beside the file, with its mode, times and owner (named as Ansible names
    backups): the operator's file stays the operator's when the controller runs as root."""
    target = "%s.%d.%s" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~"))
    shutil.copy2(path, target)
    source = os.stat(path)
    if os.stat(target)[4:6] != source[4:6]:
        os.chown(target, source.st_uid, source.st_gid)
    return target


def writable_or_refuse(path):
    """A StageError, before anything is written, when ``path`` (or the folder a new one goes into) is read-only:
    the controller often runs as root, which the mode bits would not stop."""
    target = os.path.realpath(path)
    if os.path.exists(target):
        mode = os.stat(target).st_mode
        if not mode & 0o222:
            raise StageError("%s is read-only (mode %04o): make it writable for the pipeline, or write what it needs "
                             "yourself; nothing was written" % (path, mode & 0o7777), STAGE, file=path)
        return
    folder = os.path.dirname(target) or "."
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.stat(folder).st_mode & 0o222:
        raise StageError("%s cannot be made: %s is read-only (mode %04o); nothing was written"
                         % (path, folder, os.stat(folder).st_mode & 0o7777), STAGE, file=path)


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


# each other host_vars file's ssh_tunnel_remote_port, parsed once per version of the file: a batch checks each of
# its gateways against every other file, and would parse the folder once per gateway
_TUNNEL_PORTS = FileVersionCache()


class InventoryWriter:
    """``ttn_inventory``: one gateway's host_vars file and its line in ``hosts``; in a batch (option
    ``gateways``), one of these per gateway, in threads that share the file locks."""

    def __init__(self, params, check_mode=False, progress=None):
        del progress  # a batch's writes take well under a progress line's interval
        self.params = params
        self.check_mode = check_mode
        self.backup = backup_copy if params.get("backup") else None
        self.gateway = params["name"]
        self.inventory = params["inventory_dir"]
        self.warnings = []
        self.actions = []
        self.diffs = []

    def fail(self, message, **context):
        raise StageError("%s: %s" % (self.gateway, message), STAGE, gateway=self.gateway, **context)

    def _check_values(self, hostname):
        if not (3 <= len(hostname) <= 36 and GATEWAY_ID.match(hostname)):
            self.fail("hostname %r cannot be a gateway ID on The Things Stack (3-36 characters: lower-case letters, "
                      "digits, single dashes, no dash at either end); ttn-multitech-cm registers it under that ID"
                      % hostname)
        altitude = self.params.get("altitude")
        if altitude is not None:
            try:
                self.params["altitude"] = int(str(altitude).strip())
            except ValueError:
                self.fail("altitude %r must be a whole number of metres (ttn-multitech-cm's register step parses an "
                          "int; -1 means unknown)" % (altitude,))
        for name in ("tunnel_port", "keepalive_port"):
            value = self.params.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65535:
                self.fail("%s must be a port number; without it make apply deletes the gateway's tunnel" % name)
        installed, wanted = self.params.get("installed_mlinux_version"), self.params.get("mlinux_version")
        if installed and wanted and installed != wanted:
            self.fail("mlinux_version %s differs from the installed %s: make apply would flash the gateway again; "
                      "leave mlinux_version unset to write the installed one" % (wanted, installed))

    def _group_vars(self, groups):
        """The org-wide variables visible to the gateway: ``{name: (file that sets it, value)}``."""
        found = {}
        for group in ["all", "conduits"] + list(groups):
            for candidate in ("%s.yml" % group, "%s.yaml" % group, group):
                path = os.path.join(self.inventory, "group_vars", candidate)
                paths = []
                if os.path.isdir(path):
                    paths = [os.path.join(path, name) for name in sorted(os.listdir(path))
                             if name.endswith((".yml", ".yaml"))]
                elif os.path.isfile(path):
                    paths = [path]
                for each in paths:
                    for key, value in load_mapping(each, _read(each)).items():
                        found.setdefault(key, (each, value))
        return found

    def run(self):
        """The hand-over; a refusal names the gateway it was for (the files' own errors name only the file)."""
        try:
            return self._hand_over()
        except StageError as exc:
            if exc.message.startswith(self.gateway + ":"):
                raise
            raise StageError("%s: %s" % (self.gateway, exc.message), exc.stage, **dict(exc.context,
                                                                                       gateway=self.gateway))

    def _hand_over(self):
        hostname = self.params.get("hostname") or self.gateway
        self._check_values(hostname)
        hosts_path = os.path.join(self.inventory, "hosts")
        vars_path = self._host_vars_file()
        if not os.path.isdir(self.inventory):
            self.fail("the inventory folder %s does not exist (copy inventory_template/org and point inventory_dir "
                      "at its inventory/ folder)" % self.inventory)
        catalog = os.path.join(os.path.dirname(os.path.abspath(self.inventory)), "catalog")
        if not os.path.isdir(catalog):
            self.warnings.append("%s does not exist: ttn-multitech-cm's make fails until it does (mkdir it)" % catalog)
        editor = HostVarsEditor(vars_path, _read(vars_path))
        group = self.params["group"]
        hosts_text = _read(hosts_path)
        hosts = hosts_file(hosts_path, hosts_text)
        listed = hosts.groups_of(self.gateway)
        if listed and not set(listed) & hosts.groups_under("conduits"):
            self.fail("%s lists it in %s, outside conduits: ttn-multitech-cm's make ping and make apply (TARGET "
                      "conduits) would never reach it. Move its line into a group under conduits, or remove it and "
                      "the pipeline adds it to %s; nothing was written" % (hosts_path, ", ".join(listed), group))
        if not listed and group in hosts.groups_of_file() and group not in hosts.groups_under("conduits"):
            self.fail("%s has a group %s, but not under conduits: a gateway added there would never be reached by "
                      "ttn-multitech-cm's make ping and make apply (TARGET conduits). Make %s a child of conduits, or "
                      "choose another group; nothing was written" % (hosts_path, group, group))
        if not listed:  # a hosts file it cannot add the gateway to is refused before anything is written
            hosts.with_host(self.gateway, group)
            writable_or_refuse(hosts_path)
        org = self._group_vars(listed or [group])
        owned, seeded = self._keys(hostname)
        self._tunnel_agreement(org, owned)
        self._root_keys(org)
        jump_leg = self._jump_leg()
        for path, _before, _after in jump_leg:
            writable_or_refuse(path)
        if "ssh_tunnel_gateway_user_on_jumphost" not in owned and \
                "ssh_tunnel_gateway_user_on_jumphost" not in org and \
                "ssh_tunnel_gateway_user_on_jumphost" not in editor.data:
            self.fail("ssh_tunnel_gateway_user_on_jumphost is set neither for the group nor for the host, and make "
                      "apply would then delete the gateway's tunnel; set it in %s (for example \"{{ hostname }}\") or "
                      "pass jumphost_user" % os.path.join(self.inventory, "group_vars", "conduits.yml"))
        missing = [name for name in ORG_VARS if name not in org and name not in owned and name not in editor.data]
        if missing:
            self.warnings.append("org-wide variables that ttn-multitech-cm needs are missing: %s; they belong in %s"
                                 % (", ".join(missing), os.path.join(self.inventory, "group_vars", "conduits.yml")))
        self._port_clash(vars_path, owned["ssh_tunnel_remote_port"])
        for path, keys in self._siblings(vars_path):
            shadowing = sorted(set(owned) & keys)
            if shadowing:
                self.fail("%s sets %s, which the pipeline keeps in %s: Ansible merges the files of that folder in "
                          "name order, so one would shadow the other. Keep them in %s only; nothing was written"
                          % (path, ", ".join(shadowing), vars_path, vars_path))
            for key in keys:
                seeded.pop(key, None)  # the operator's own value stands: no placeholder beside it
        text, changed_keys = editor.apply(owned, seeded)
        if changed_keys:
            writable_or_refuse(vars_path)
            self.actions.append("%s %s: %s" % ("write" if editor.text else "create", vars_path,
                                               ", ".join(changed_keys)))
            self.diffs.append({"before_header": vars_path, "after_header": vars_path, "before": editor.text,
                               "after": text})
        written = []
        try:
            if changed_keys and not self.check_mode:
                previous = _read(vars_path)
                write_atomic(vars_path, text, self.backup)
                written.append((vars_path, previous, text))
            written += self._hosts(hosts_path, group)
            written += self._pin_jump_leg(jump_leg)
        except BaseException:
            # all or nothing: what this run wrote goes back, where no other gateway has written since
            for path, before, after in reversed(written):
                with FolderLock(path):
                    if _read(path) != after:
                        continue
                    if before is None:
                        os.unlink(path)
                    else:
                        write_atomic(path, before)
            raise
        self._record(vars_path)
        return {"changed": bool(self.actions), "gateway": self.gateway, "actions": self.actions,
                "host_vars": vars_path,
                "hosts": hosts_path, "groups": listed or [group], "changed_keys": changed_keys,
                "missing_org_vars": missing, "warnings": self.warnings, "diff": self.diffs}

    def _record(self, vars_path):
        """The last stage: the ledger marks the gateway provisioned (the conduits inventory reads it)."""
        if not self.params.get("ledger_dir"):
            return
        ledger = Ledger(self.params["ledger_dir"])
        record = ledger.read(self.gateway)
        updated = record_stage(record, STAGE, host_vars=vars_path)
        if updated != record and self._act("record the %s stage in %s" % (STAGE, ledger.path(self.gateway))):
            ledger.write(self.gateway, updated)

    def _act(self, text):
        self.actions.append(text)
        return not self.check_mode

    def _host_vars_file(self):
        """The file Ansible reads the gateway's variables from, in the shape the organisation keeps them:
        ``<gw>.yml``, ``<gw>.yaml``, ``<gw>`` or a folder ``<gw>/`` (the file in it that holds the pipeline's keys,
        else a new ``lorawan_conduit.yml`` there); a new ``<gw>.yml`` when there is none."""
        folder = os.path.join(self.inventory, "host_vars")
        found = [os.path.join(folder, self.gateway + suffix) for suffix in (".yml", ".yaml", "", ".json")
                 if os.path.isfile(os.path.join(folder, self.gateway + suffix))]
        directory = os.path.join(folder, self.gateway)
        if os.path.isdir(directory):
            files = sorted(os.path.join(directory, name) for name in os.listdir(directory)
                           if name.endswith((".yml", ".yaml")) and os.path.isfile(os.path.join(directory, name)))
            holding = [path for path in files
                       if set(load_mapping(path, _read(path))) & set(OWNED_MARKERS)]
            if len(holding) > 1:
                self.fail("the pipeline's keys for it are spread over %s: keep them in one file, then run again"
                          % ", ".join(holding))
            found.append(holding[0] if holding else os.path.join(directory, "lorawan_conduit.yml"))
        if len(found) > 1:
            self.fail("Ansible reads its variables from %s; the pipeline writes to one of them only: merge them, then "
                      "run again" % " and ".join(found))
        if found and found[0].endswith(".json"):
            self.fail("its variables are in %s (JSON); the pipeline edits YAML only: convert it, then run again"
                      % found[0])
        return found[0] if found else os.path.join(folder, "%s.yml" % self.gateway)

    @staticmethod
    def _siblings(vars_path):
        """``[(path, set of keys)]`` of the other files of a host_vars folder the gateway's file is in."""
        folder = os.path.dirname(vars_path)
        if os.path.basename(os.path.dirname(folder)) != "host_vars":
            return []
        return [(path, set(load_mapping(path, _read(path))))
                for path in sorted(os.path.join(folder, name) for name in os.listdir(folder)
                                   if name.endswith((".yml", ".yaml")))
                if path != vars_path and os.path.isfile(path)]

    def _tunnel_end(self):
        """(host, ssh port) of the jumphost the gateway's tunnel uses now: given, else from its ledger record (the
        tunnel stage writes it), else None."""
        host, port = self.params.get("tunnel_remote_host"), self.params.get("tunnel_remote_ssh_port")
        if not host and self.params.get("ledger_dir"):
            jumphost = Ledger(self.params["ledger_dir"]).read(self.gateway).get("jumphost") or {}
            host, port = jumphost.get("host"), port or jumphost.get("port")
        return (host, int(port or 22)) if host else (None, None)

    def _tunnel_agreement(self, org, owned):
        """``make apply`` rewrites the unit's tunnel from ssh_tunnel_remote_host and ssh_tunnel_ssh_port: they must
        be the jumphost the tunnel uses now, or the gateway never calls home again."""
        host, port = self._tunnel_end()
        if host is None:
            self.warnings.append("%s: which jumphost its tunnel uses is unknown here (no ledger record of the tunnel "
                                 "stage, no tunnel_remote_host): ssh_tunnel_remote_host and ssh_tunnel_ssh_port are "
                                 "not checked" % self.gateway)
            return
        for key, needed in (("ssh_tunnel_remote_host", host), ("ssh_tunnel_ssh_port", port)):
            if key not in org:
                owned[key] = needed
                continue
            path, value = org[key]
            if isinstance(value, TaggedValue):
                self.fail("%s sets %s as a %s value, which cannot be checked against the jumphost the tunnel uses "
                          "(%s); make apply writes it into the unit's tunnel. Set it there as a literal"
                          % (path, key, value.tag, needed))
            if str(value).strip() != str(needed):
                self.fail("%s sets %s: %s, but the gateway's tunnel goes to %s: make apply would rewrite the unit's "
                          "tunnel to that and the gateway would not call home again. Set %s: %s there (a literal "
                          "value), or remove it and the pipeline writes it for each gateway"
                          % (path, key, shown(str(value)), needed, key, needed))

    def _root_keys(self, org):
        """ttn-multitech-cm installs authorized_keys as root's only keys: a placeholder there locks root out."""
        if "authorized_keys" not in org:
            return
        path, keys = org["authorized_keys"]
        if isinstance(keys, TaggedValue):
            self.warnings.append("%s: authorized_keys is a %s value; its keys cannot be checked here"
                                 % (path, keys.tag))
            return
        if not isinstance(keys, list) or not keys:
            self.fail("%s: authorized_keys is %s; make apply would leave root on every gateway with no key it "
                      "accepts. List the operators' public keys there" % (path, "empty" if not keys else "not a list"))
        for entry in keys:
            if isinstance(entry, TaggedValue):
                continue  # a vaulted key: ttn-multitech-cm decrypts it, this stage cannot
            try:
                parse_public_key(entry if isinstance(entry, str) else "")
            except KeyFormatError as exc:
                self.fail("%s: authorized_keys holds %s, which is not a public key (%s); make apply installs that "
                          "list as root's only keys and would lock root out. Put the operators' real keys there"
                          % (path, shown(str(entry)), exc))

    def _port_clash(self, own_path, port):
        """Another gateway of the inventory on the same tunnel port would share Ansible's connection to it."""
        folder = os.path.dirname(own_path)
        if not os.path.isdir(folder):
            return
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if path == own_path or not name.endswith((".yml", ".yaml")):
                continue
            if _TUNNEL_PORTS.get(path, "ssh_tunnel_remote_port", lambda path=path: load_mapping(
                    path, _read(path)).get("ssh_tunnel_remote_port")) == port:
                self.fail("tunnel port %d is already %s's (%s): two gateways on one port reach each other's "
                          "connections; register the gateway again on the jumphost or fix that file"
                          % (port, name.rsplit(".", 1)[0], path))

    def _hosts(self, hosts_path, group):
        with FolderLock(hosts_path):
            text = _read(hosts_path)
            hosts = hosts_file(hosts_path, text)
            if hosts.groups_of(self.gateway):
                return []
            after = hosts.with_host(self.gateway, group)
            hosts_file(hosts_path, after)  # what we write must parse
            self.actions.append("add %s to [%s] in %s" % (self.gateway, group, hosts_path))
            self.diffs.append({"before_header": hosts_path, "after_header": hosts_path, "before": text or "",
                               "after": after})
            if self.check_mode:
                return []
            write_atomic(hosts_path, after, self.backup)
            return [(hosts_path, text, after)]

    def _jump_leg(self):
        """What pins the jumphost's host keys for make ping's jump leg (see _org_ssh); nothing without them or
        without the organisation's ssh_config."""
        keys = self.params.get("jumphost_host_keys")
        ssh_config = self.params.get("ssh_config") or os.path.join(
            os.path.dirname(os.path.abspath(self.inventory)), "ssh_config")
        if not keys:
            return []
        if not os.path.isfile(ssh_config):
            self.warnings.append("%s does not exist: the jumphost's host key is not pinned for make ping's jump leg "
                                 "(%s); copy it from inventory_template/org" % (ssh_config, self.params["jump_host"]))
            return []
        try:
            return jump_leg_plan(ssh_config, self.params["jump_host"], keys, _read)
        except JumpLegError as exc:
            self.fail("make ping's jump leg: %s; nothing was written" % exc)

    def _pin_jump_leg(self, planned):
        """The jump leg's files (``planned`` by :meth:`_jump_leg`) written, under one lock (every gateway of the
        batch pins the same jumphost): ``[(path, text before, text after)]`` of what was written."""
        written = []
        if not planned:
            return written
        with FolderLock(planned[0][0]):
            if not self.check_mode:
                planned = self._jump_leg()  # again under the lock: another gateway may have pinned it meanwhile
            for path, before, after in planned:
                self.actions.append("%s %s: pin the jumphost's host keys for make ping's jump leg"
                                    % ("write" if before is not None else "create", path))
                self.diffs.append({"before_header": path, "after_header": path, "before": before or "",
                                   "after": after})
                if not self.check_mode:
                    write_atomic(path, after, self.backup if before is not None else None)
                    written.append((path, before, after))
        return written

    def _keys(self, hostname):
        params = self.params
        port = params["tunnel_port"]
        owned = {
            "hostname": hostname,
            "ansible_host": "localhost",
            "ansible_port": port,
            "ansible_user": params["ansible_user"],
            "ssh_tunnel_remote_port": port,
            "ssh_tunnel_keepalive_base_port": params["keepalive_port"],
            "ssh_tunnel_local_port": params["local_port"],
        }
        if params.get("jumphost_user"):
            owned["ssh_tunnel_gateway_user_on_jumphost"] = params["jumphost_user"]
        version = params.get("mlinux_version") or params.get("installed_mlinux_version")
        identity = params.get("identity") or {}
        try:  # what the unit said (through the ledger, which a hand can edit) goes in only in its strict form
            checked_identity(identity)
            if version:
                checked("mlinux_version", str(version))
        except DeviceValueError as exc:
            self.fail("%s: refused, nothing written. Values read from a unit become variables of every later "
                      "Ansible run; find out why the unit or its ledger file says that" % exc)
        if version:
            owned["mlinux_version"] = str(version)
        for key, value in sorted(identity.items()):
            if value is not None:
                owned["lorawan_conduit_%s" % key] = value
        seeded = {
            "description": params.get("description") or hostname,
            "latitude": params["latitude"] if params.get("latitude") is not None else 0.0,
            "longitude": params["longitude"] if params.get("longitude") is not None else 0.0,
            "altitude": params["altitude"] if params.get("altitude") is not None else -1,
            "eth0_type": params["eth0_type"],
        }
        return owned, seeded


TTN_INVENTORY = StageModule(
    InventoryWriter,
    dict(
        name=dict(type="str", required=True),
        inventory_dir=dict(type="path", required=True),
        group=dict(type="str", default="test"),
        hostname=dict(type="str"),
        description=dict(type="str"),
        latitude=dict(type="float"),
        longitude=dict(type="float"),
        altitude=dict(type="raw"),
        eth0_type=dict(type="str", choices=["dhcp", "static", "manual"], default="dhcp"),
        tunnel_port=dict(type="int", required=True),
        keepalive_port=dict(type="int", required=True, no_log=False),
        local_port=dict(type="int", default=22),
        ansible_user=dict(type="str", default="root"),
        jumphost_user=dict(type="str"),
        tunnel_remote_host=dict(type="str"),
        tunnel_remote_ssh_port=dict(type="int"),
        installed_mlinux_version=dict(type="str"),
        mlinux_version=dict(type="str"),
        identity=dict(type="dict"),
        backup=dict(type="bool", default=False),
        jumphost_host_keys=dict(type="list", elements="str", no_log=False),
        ssh_config=dict(type="path"),
        jump_host=dict(type="str", default="jumphost"),
        **ledger_argument_spec()
    ),
    batch=True,
    ledger_stage=STAGE,
)
