"""Commissioner decisions with a fake mPower client and a fake clock (timeouts without waiting)."""

from __future__ import annotations

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils import _aep_commission
from ansible_collections.lorawan.conduit.plugins.module_utils._aep_api import MPowerUnreachable
from ansible_collections.lorawan.conduit.plugins.module_utils._aep_commission import Commissioner
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._net import Deadline

PARAMS = {"name": "gw1", "address": "127.0.0.1", "https_port": 443, "validate_certs": False, "request_timeout": 1,
          "username": "mtadm", "password": "x", "ssh_port": 22, "wait": True, "boot_timeout": 30,
          "reboot_timeout": 60}


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.01)


class FakeClient:
    """Answers after ``boots_at`` seconds; a commissioned unit with SSH configured."""

    address, port = "127.0.0.1", 443

    def __init__(self, clock, boots_at=0.0, goes_down=True):
        self.clock = clock
        self.boots_at = boots_at
        self.goes_down = goes_down
        self.calls = []
        self.token = None

    def describe(self):
        return "127.0.0.1:443"

    def is_commissioned(self):
        self.calls.append("GET commissioning")
        if self.clock.now < self.boots_at or ("restart" in self.calls and self.goes_down):
            raise MPowerUnreachable("connection refused")
        return True

    def login(self, username, password):
        self.calls.append("login")

    def logout(self):
        self.calls.append("logout")

    def get(self, path):
        self.calls.append("GET " + path)
        if path == "system":
            return {"productId": "MTCDT-246A", "macAddress": "00:08:00:AA:BB:CC"}
        return {"ssh": {"enabled": False, "lan": False, "wan": False, "port": 22}}

    def put(self, path, body):
        self.calls.append("PUT " + path)

    def command(self, name):
        self.calls.append(name)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(_aep_commission, "peer_certificate_sha256", lambda *a, **k: "ab" * 32)
    monkeypatch.setattr(_aep_commission, "ssh_banner", lambda *a, **k: None)
    return fake


def commissioner(clock, client, check_mode=False, **params):
    return Commissioner(dict(PARAMS, **params), check_mode=check_mode, client=client,
                        deadline_factory=lambda s: Deadline(s, clock=clock.time, sleep=clock.sleep))


def test_booting_unit_is_waited_for(clock):
    client = FakeClient(clock, boots_at=12)
    with pytest.raises(StageError) as caught:  # SSH never answers in this fake
        commissioner(clock, client).run()
    assert caught.value.stage == "wait for ssh"
    assert client.calls.count("GET commissioning") > 3
    assert client.calls.index("login") > client.calls.index("GET commissioning")
    assert clock.now >= 12


def test_unit_that_never_answers_fails_with_the_reason(clock):
    client = FakeClient(clock, boots_at=10 ** 6)
    with pytest.raises(StageError) as caught:
        commissioner(clock, client).run()
    assert caught.value.stage == "connect"
    assert "did not answer within 30 s" in caught.value.message
    assert "connection refused" in caught.value.message
    assert "login" not in client.calls


def test_restart_that_does_not_reboot_is_reported(clock):
    client = FakeClient(clock, goes_down=False)
    with pytest.raises(StageError) as caught:
        commissioner(clock, client).run()
    assert caught.value.stage == "restart"
    assert client.calls[-1] == "GET commissioning"
    assert ["PUT remoteAccess", "save", "restart"] == [c for c in client.calls if c in
                                                       ("PUT remoteAccess", "save", "restart")]


def test_check_mode_sends_nothing_that_changes_state(clock):
    client = FakeClient(clock)
    result = commissioner(clock, client, check_mode=True).run()
    assert result["changed"] and result["ssh_changed"] and not result["rebooted"]
    assert not {"PUT remoteAccess", "save", "restart", "revert"} & set(client.calls)
