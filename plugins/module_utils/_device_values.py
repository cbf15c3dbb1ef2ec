# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The forms values read from a unit may take before they go anywhere (the ledger, host_vars, reports).

Every string a unit sends is untrusted: ``mts-io-sysfs`` output, ``/etc/mlinux-version``, the mPower API's
``system`` object. Written into an inventory as they came, they are Jinja for every later Ansible run (text
planted on a unit would run on the operator's controller when ttn-multitech-cm reads the variable), YAML for
every parser and shell words for every script. Each known value has a strict form here; anything else is
refused, and shown quoted so that the message itself is inert.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re

_MODEL = r"[A-Z0-9]+(?:-[A-Z0-9.]+)+"
FORMS = {
    "product_id": (_MODEL, "a MultiTech product id such as MTCDT-246A"),
    "serial": (r"[0-9A-Za-z]{1,32}", "a serial of letters and digits such as 12345678"),
    "mac": (r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}", "a MAC address such as 00:08:00:4a:26:f1"),
    "hw_version": (r"[A-Z0-9]+-[0-9A-Za-z.]+", "a hardware version such as MTCDT-0.1"),
    "uuid": (r"[0-9a-f]{32}", "32 lower-case hex digits"),
    "lora_eui": (r"[0-9a-f]{2}(?::[0-9a-f]{2}){7}", "an EUI-64 such as 00:80:00:00:a0:00:15:00"),
    "lora_product_id": (_MODEL, "a product id such as MTAC-LORA-H-915"),
    "lora_hw_version": (_MODEL, "a hardware version such as MTAC-LORA-1.5"),
    "product_type": (r"[a-z0-9]+", "a product type such as mtcdt"),
    "mlinux_version": (r"[0-9]+(?:\.[0-9]+){1,3}", "an mLinux version such as 5.3.31"),
}
_COMPILED = dict((name, re.compile(pattern + r"\Z")) for name, (pattern, _what) in FORMS.items())


class DeviceValueError(ValueError):
    """A value from a unit that is not in its form; ``str()`` says which, shows it inert, and what it should be."""

    def __init__(self, name, value):
        self.name = name
        self.value = value
        super(DeviceValueError, self).__init__(
            "%s %s is not %s" % (name, shown(value), FORMS[name][1] if name in FORMS else "a value this collection knows"))


def shown(value, limit=60):
    """``value`` for a message: quoted, control characters and non-ASCII escaped, braces and dollars too (a
    message can end up in a template or a shell), long text cut."""
    text = value if isinstance(value, str) else repr(value)
    escaped = "".join(c if (" " <= c <= "~" and c not in "{}$`\\'%") else "\\x%02x" % ord(c) if ord(c) < 256
                      else "\\u%04x" % ord(c) for c in text[:limit])
    return "'%s'%s" % (escaped, "..." if len(text) > limit else "")


def checked(name, value):
    """``value`` when it is None or in the form ``name`` has; DeviceValueError otherwise (also for names without a
    form: nothing unchecked goes through)."""
    if value is None:
        return None
    pattern = _COMPILED.get(name)
    # a serial of digits may have become a number on its way through YAML or a template
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if pattern is None or not isinstance(text, str) or not pattern.match(text):
        raise DeviceValueError(name, value)
    return value


def checked_identity(identity):
    """Every value of an identity mapping checked (see :func:`checked`); the mapping itself, or the first error."""
    for name in sorted(identity):
        checked(name, identity[name])
    return identity
