# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lorawan.conduit.jumphost_tunnels runs on the jumphost; a tunnel that did not come up is its gateway's tunnel
stage failure in the ledger."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.lorawan.conduit.plugins.plugin_utils._jumphost_action import JumphostAction


class ActionModule(JumphostAction):
    ledger_stage = "tunnel"

    def outcomes(self, args, result, jumphost):
        """Only the failures: a tunnel that listens keeps the outcome its installation filed."""
        if not args.get("wait_timeout") or not result.get("failed"):
            return {}
        reasons = result.setdefault("reasons", {})
        silent = result["not_listening"] if "not_listening" in result else args.get("gateways") or []
        for name in silent:
            reasons.setdefault(name, "%s: the jumphost (%s) could not say whether its tunnel listens: %s"
                               % (name, jumphost, result.get("msg") or "no answer"))
        return dict((name, {"failed": True, "changed": False, "msg": reasons[name]}) for name in silent)
