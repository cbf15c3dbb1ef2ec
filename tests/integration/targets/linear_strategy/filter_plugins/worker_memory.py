# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A filter for this target only: what the worker templating it inherited and copied (filters run in the worker)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import gc


def worker_memory(_value):
    """Objects frozen out of this worker's collector, then its private memory after a full collection."""
    frozen = gc.get_freeze_count()
    gc.collect()
    with open("/proc/self/smaps_rollup") as handle:
        private = sum(int(line.split()[1]) for line in handle if line.startswith(("Private_Dirty:", "Private_Clean:")))
    return {"frozen": frozen, "private_kib": private}


class FilterModule(object):
    def filters(self):
        return {"worker_memory": worker_memory}
