"""lorawan.conduit.linear: the controller's objects are frozen out of the collector while a worker is forked, and
only then. The real path (ansible-playbook, the memory a worker's collection copies) is
tests/integration/targets/linear_strategy."""

from __future__ import annotations

import gc

import pytest
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule

from ansible_collections.lorawan.conduit.plugins.strategy.linear import StrategyModule


def test_objects_are_frozen_for_the_fork_and_collected_again_after(monkeypatch):
    seen = []

    def queue(self, host, task, task_vars, play_context):  # where ansible.builtin.linear forks the worker
        seen.append(gc.get_freeze_count())
        if host == "broken":
            raise RuntimeError("no worker")
        return "queued"
    monkeypatch.setattr(LinearStrategyModule, "_queue_task", queue)
    strategy = StrategyModule.__new__(StrategyModule)  # _queue_task needs nothing from __init__
    gc.unfreeze()  # what an earlier test of this worker left frozen (seen on Python 3.12): start from nothing frozen
    assert gc.get_freeze_count() == 0
    assert strategy._queue_task("gateway", None, {}, None) == "queued"  # pylint: disable=protected-access
    assert seen[0] > 1000 and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        strategy._queue_task("broken", None, {}, None)  # pylint: disable=protected-access
    assert gc.get_freeze_count() == 0
