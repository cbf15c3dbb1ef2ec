# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""YAML as the collection reads it: PyYAML's safe loader on libyaml's parser where PyYAML has it, as Ansible's own
loader does (the pure-Python parser is about ten times slower, and every stage reads each gateway's ledger record
and host_vars), the pure-Python one otherwise."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

SafeLoader = getattr(yaml, "CSafeLoader", None) or getattr(yaml, "SafeLoader", None)


def safe_load(stream):
    """``yaml.safe_load`` on the faster parser."""
    return yaml.load(stream, Loader=SafeLoader)  # nosec - a safe loader
