# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lorawan.conduit.gateway_decommission runs in the controller's worker."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from ansible_collections.lorawan.conduit.plugins.module_utils._decommission import GATEWAY_DECOMMISSION
from ansible_collections.lorawan.conduit.plugins.plugin_utils._controller_action import ControllerAction


class ActionModule(ControllerAction):
    stage_module = GATEWAY_DECOMMISSION
