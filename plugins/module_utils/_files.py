# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the controller-side modules write (ledger, reports, the organisation's inventory)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import os


def ensure_directory(path, mode=0o755):
    """``path`` and its parents, made when missing. Every gateway of a batch runs this at once: one that finds the
    folder made by another between its look and its mkdir is not an error."""
    try:
        os.makedirs(path, mode)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(path):
            raise
