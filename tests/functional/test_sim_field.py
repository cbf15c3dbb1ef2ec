"""What a simulated unit shows in the field, for the day-two playbooks: the packet forwarder as make apply installs it
(ttn-multitech-cm's init script name and pid file), one that dies as it starts, and a clock that is off until
ntpdate sets it right."""

from __future__ import annotations

import os
import time

import pytest

from simulator.harness import wait_until
from tests.conftest import as_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

FORWARDER_ALIVE = "p=$(cat /var/run/lora-pkt-fwd.pid 2>/dev/null) && test -n \"$p\" && test -d /proc/$p && echo alive || echo dead"


def test_the_forwarder_and_the_clock_of_a_unit_in_the_field(sim_factory):
    sim = sim_factory("--mlinux", "2", "--device", "mlinux-01:forwarder=1,clock_offset=-3600")
    applied, stock = sim.devices
    assert as_root(applied, FORWARDER_ALIVE).strip() == "alive"  # started at boot from rc5.d
    assert as_root(stock, "test -e /etc/init.d/ttn-pkt-forwarder || echo none").strip() == "none"

    before = time.time()
    shown = int(as_root(applied, "date +%s"))
    assert before - 3600 - 5 <= shown <= time.time() - 3600 + 5
    assert abs(int(as_root(stock, "date +%s")) - time.time()) < 5
    as_root(applied, "ntpdate -bu pool.ntp.org")
    assert abs(int(as_root(applied, "date +%s")) - time.time()) < 5

    assert "Stopping ttn-packet-forwarder" in as_root(applied, "/etc/init.d/ttn-pkt-forwarder stop")
    assert as_root(applied, FORWARDER_ALIVE).strip() == "dead"
    sim.set_knobs(applied["name"], forwarder_crashes=True)
    as_root(applied, "/etc/init.d/ttn-pkt-forwarder start")
    wait_until(lambda: "failed to start the concentrator" in as_root(applied, "cat /var/log/lora-pkt-fwd.log 2>/dev/null; true"),
               10, "the forwarder dying")
    assert as_root(applied, FORWARDER_ALIVE).strip() == "dead"
    sim.set_knobs(applied["name"], forwarder_crashes=False)
    as_root(applied, "/etc/init.d/ttn-pkt-forwarder restart")
    assert as_root(applied, FORWARDER_ALIVE).strip() == "alive"
