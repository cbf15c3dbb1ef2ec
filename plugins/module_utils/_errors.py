# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type the stage classes raise and the modules report."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


class StageError(Exception):
    """A failure an operator can act on: ``message`` names the gateway, the stage and what to do;
    ``stage`` is machine-readable; ``context`` goes into the module result as extra keys."""

    def __init__(self, message, stage, **context):
        super(StageError, self).__init__(message)
        self.message = message
        self.stage = stage
        self.context = context
