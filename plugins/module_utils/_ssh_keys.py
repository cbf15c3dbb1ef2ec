# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenSSH public keys and ``authorized_keys`` lines, in pure Python.

The jumphost modules run on the jumphost, where paramiko is not installed, and
must never drop a line they do not understand: a line that does not parse is
kept verbatim and reported, exactly as sshd would ignore it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import base64
import binascii
import hashlib
import re
import struct

KEY_TYPES = frozenset([
    "ssh-rsa", "ssh-dss", "ssh-ed25519", "ssh-ed448",
    "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa-cert-v01@openssh.com", "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
])

_OPTION_NAME = re.compile(r"[A-Za-z0-9-]+\Z")


class KeyFormatError(ValueError):
    """A public key or an authorized_keys line that OpenSSH would not accept."""


class PublicKey:
    """``type base64 [comment]``; two keys are the same when type and blob are."""

    def __init__(self, key_type, blob_b64, comment=""):
        self.key_type = key_type
        self.blob_b64 = blob_b64
        self.comment = comment

    @property
    def fingerprint(self):
        blob = base64.b64decode(self.blob_b64)
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")

    def same_as(self, other):
        return other is not None and (self.key_type, self.blob_b64) == (other.key_type, other.blob_b64)

    def text(self, comment=None):
        comment = self.comment if comment is None else comment
        return " ".join(part for part in (self.key_type, self.blob_b64, comment) if part)


def parse_public_key(text):
    """A public key from ``ssh-rsa AAAA... comment``; raises KeyFormatError saying what is wrong."""
    text = (text or "").strip()
    if any(char in text for char in "\r\n\0"):
        raise KeyFormatError("a public key is one line, and this holds a line break (two keys, or one broken)")
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise KeyFormatError("a public key needs a key type and the base64 key data")
    key_type, blob_b64 = parts[0], parts[1]
    if key_type not in KEY_TYPES:
        raise KeyFormatError("%r is not an OpenSSH public key type" % key_type[:40])
    try:
        blob = base64.b64decode(blob_b64.encode("ascii"), validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeError, ValueError):
        raise KeyFormatError("the key data of the %s key is not valid base64 key data" % key_type)
    if embedded != key_type:
        raise KeyFormatError("the key data holds a %r key but the line says %s" % (embedded[:40], key_type))
    if not key_type.endswith("-cert-v01@openssh.com") and not _whole_strings(blob):
        raise KeyFormatError("the key data of the %s key is truncated or has trailing bytes" % key_type)
    return PublicKey(key_type, blob_b64, parts[2].strip() if len(parts) > 2 else "")


def _whole_strings(blob):
    """Plain public keys are a sequence of length-prefixed strings that fills the blob exactly."""
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return False
        (length,) = struct.unpack(">I", blob[offset:offset + 4])
        offset += 4 + length
    return offset == len(blob) and len(blob) > 8


def known_hosts_name(host, port):
    """How ssh names ``host`` on ``port`` in known_hosts: the bare name on 22, ``[host]:port`` elsewhere."""
    return host if int(port) == 22 else "[%s]:%d" % (host, int(port))


def key_fingerprint(line):
    """OpenSSH-style ``SHA256:...`` fingerprint of a public key line."""
    return parse_public_key(line).fingerprint


def same_key(line_a, line_b):
    return bool(line_a and line_b) and line_a.split()[:2] == line_b.split()[:2]


def _split_options(text):
    """``(options, rest)`` where options is the leading option list of an authorized_keys line."""
    options = []
    name, value, in_quotes, index = "", None, False, 0
    current = []
    while index < len(text):
        char = text[index]
        if in_quotes:
            if char == "\\" and index + 1 < len(text) and text[index + 1] == '"':
                current.append('"')
                index += 2
                continue
            if char == '"':
                in_quotes = False
            else:
                current.append(char)
        elif char == '"':
            if value is None:
                raise KeyFormatError("a quote in the option name %r" % "".join(current))
            in_quotes = True
        elif char == "=" and value is None:
            name, value, current = "".join(current), "", []
        elif char in ", \t":
            options.append(_option(name, value, current))
            name, value, current = "", None, []
            if char != ",":
                return options, text[index:].strip()
        else:
            current.append(char)
        index += 1
    if in_quotes:
        raise KeyFormatError("an option value has no closing quote")
    raise KeyFormatError("the options are not followed by a key")


def _option(name, value, current):
    if value is None:
        name, value = "".join(current), None
    else:
        value = "".join(current)
    if not _OPTION_NAME.match(name):
        raise KeyFormatError("%r is not an option name" % name[:40])
    return (name.lower(), value)


def format_options(options):
    parts = []
    for name, value in options:
        if value is None:
            parts.append(name)
        else:
            parts.append('%s="%s"' % (name, value.replace('"', '\\"')))
    return ",".join(parts)


class AuthorizedKey:
    """One line of an authorized_keys file as read: a key (with options), or text kept as it is."""

    def __init__(self, number, text, key=None, options=None, problem=None):
        self.number = number
        self.text = text
        self.key = key
        self.options = options or []
        self.problem = problem

    @property
    def is_key(self):
        return self.key is not None

    def values(self, name):
        return [value for option, value in self.options if option == name]

    @classmethod
    def parse(cls, number, text):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            return cls(number, text)
        try:
            if stripped.split(None, 1)[0] in KEY_TYPES:
                return cls(number, text, key=parse_public_key(stripped))
            options, rest = _split_options(stripped)
            return cls(number, text, key=parse_public_key(rest), options=options)
        except KeyFormatError as exc:
            return cls(number, text, problem=str(exc))


def authorized_key_line(key, options, comment):
    prefix = format_options(options)
    return (prefix + " " if prefix else "") + key.text(comment=comment)


def parse_authorized_keys(text):
    return [AuthorizedKey.parse(number, line) for number, line in enumerate(text.splitlines(), 1)]
