# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lorawan.conduit.jumphost_register runs on the jumphost; each gateway's registration is filed in the ledger."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.lorawan.conduit.plugins.plugin_utils._jumphost_action import JumphostAction


class ActionModule(JumphostAction):
    ledger_stage = "register"

    def outcomes(self, args, result, jumphost):
        if args.get("state", "present") != "present":
            return {}  # taking a gateway off the jumphost is not its registration
        if args.get("gateway"):
            return {args["gateway"]: result}
        registrations = result.setdefault("registrations", {})
        for entry in args.get("gateways") or []:
            why = result.get("msg") or "no answer"
            words = "%s: the jumphost (%s) did not register it: %s" % (entry["gateway"], jumphost, why)
            registrations.setdefault(entry["gateway"], {"gateway": entry["gateway"], "failed": True, "changed": False,
                                                        "msg": words})
        return dict((entry["gateway"], registrations[entry["gateway"]]) for entry in args.get("gateways") or [])
