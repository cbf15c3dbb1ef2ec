# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

DOCUMENTATION = r"""
name: linear
short_description: The linear strategy, with workers that keep sharing the controller's memory
version_added: 0.1.0
author:
  - lorawan.conduit developers (@lorawan-conduit)
description:
  - Runs a play exactly as M(ansible.builtin.linear) does (task by task, every host before the next task), so
    roles that batch work with C(run_once), such as lorawan.conduit.jumphost_register and
    lorawan.conduit.gateway_tunnel, work the same.
  - Ansible forks a worker for every host and task. Each worker inherits the controller's objects, and a run of
    Python's garbage collector in the worker writes to every one of them, so the kernel copies all those pages
    into that worker. On a bench of thirty gateways the workers of one stage wait side by side for minutes (a
    reboot, a flash), and those copies made most of the run's memory. This strategy freezes the controller's
    objects out of the collector for the moment of each fork (Python's C(gc.freeze)), so the workers leave them
    alone; the controller itself goes on collecting as before.
  - lorawan.conduit.provision uses it; C(-e provision_strategy=ansible.builtin.linear) runs that play without it.
notes:
  - ansible-core 2.19 and later print one deprecation warning for any strategy plugin from a collection when a
    play loads it. The strategy changes nothing but the memory of the workers, so a play may switch back to
    M(ansible.builtin.linear) at any time.
"""

EXAMPLES = r"""
- name: Provision the gateways
  hosts: new_gateways
  strategy: lorawan.conduit.linear
  gather_facts: false
  tasks:
    - name: Commission the unit
      ansible.builtin.include_role:
        name: lorawan.conduit.aep_commission
"""

import gc

from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule


class StrategyModule(LinearStrategyModule):
    """``ansible.builtin.linear``; each worker starts with the controller's objects frozen out of its collector."""

    def _queue_task(self, host, task, task_vars, play_context):
        gc.freeze()
        try:
            return super(StrategyModule, self)._queue_task(host, task, task_vars, play_context)
        finally:
            # the controller's own garbage is collected again; the worker keeps the frozen state it was born with
            gc.unfreeze()
