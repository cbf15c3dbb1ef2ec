"""The mPower client (plugins/module_utils/_aep_api.py) against simulated units."""

from __future__ import annotations

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._aep_api import (
    MPowerAuthError,
    MPowerClient,
    MPowerCommissioningError,
    MPowerError,
    MPowerUnreachable,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._net import peer_certificate_sha256, ssh_banner

PASSWORD = "a#b&c+d e%f?g/h;i@J1"


@pytest.fixture
def units(sim_factory):
    return sim_factory("--aep", "2", "--device", "aep-02:commissioned=1,ssh_enabled=1")


def client_for(device, **kwargs):
    return MPowerClient(device["address"], device["https_port"], **kwargs)


def test_any_punctuation_survives_commissioning_and_login(units):
    device = units.device("aep-01")
    client = client_for(device)
    assert client.is_commissioned() is False
    client.commission("mtadm", PASSWORD)
    assert client.is_commissioned() is True
    assert len(client.login("mtadm", PASSWORD)) == 32
    assert client.get("system")["productId"] == device["product_id"]


def test_refused_password_raises_the_device_message(units):
    client = client_for(units.device("aep-01"))
    with pytest.raises(MPowerCommissioningError, match="at least 8 characters"):
        client.commission("mtadm", "Ab1!")
    assert client.is_commissioned() is False


def test_wrong_password_is_an_auth_error_without_the_password(units):
    device = units.device("aep-02")
    with pytest.raises(MPowerAuthError) as caught:
        client_for(device).login("mtadm", PASSWORD)
    assert caught.value.code == 401
    assert PASSWORD not in str(caught.value)


def test_unreachable_is_never_commissioned(units):
    device = units.device("aep-01")
    client = MPowerClient(device["address"], 1, timeout=2)
    with pytest.raises(MPowerUnreachable):
        client.is_commissioned()


def test_errors_never_carry_the_login_query(units, monkeypatch):
    device = units.device("aep-01")
    client = MPowerClient(device["address"], 1, timeout=2)
    with pytest.raises(MPowerUnreachable) as caught:
        client.login("mtadm", PASSWORD)
    assert "password" not in str(caught.value) and PASSWORD not in str(caught.value)


def test_fingerprint_pinning(units, monkeypatch):
    device = units.device("aep-01")
    # the machine's CA bundle variable must neither enable nor disable checking behind our back
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    fingerprint = peer_certificate_sha256(device["address"], device["https_port"])
    assert fingerprint == device["tls_fingerprint_sha256"]
    pinned = ":".join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
    assert client_for(device, fingerprint=pinned).is_commissioned() is False
    wrong = "00" * 32
    with pytest.raises(MPowerError, match="its TLS certificate is not the pinned one") as caught:
        client_for(device, fingerprint=wrong).is_commissioned()
    assert not isinstance(caught.value, MPowerUnreachable)  # another certificate: waiting would not change it
    with pytest.raises(MPowerUnreachable, match="TLS error"):
        client_for(device, validate_certs=True).is_commissioned()


def test_ssh_banner(units):
    device = units.device("aep-02")
    assert ssh_banner(device["address"], device["ssh_port"]).startswith("SSH-2.0-")
    assert ssh_banner(units.device("aep-01")["address"], units.device("aep-01")["ssh_port"], timeout=1) is None


def test_sockets_bound_to_an_interface(units):
    """SO_BINDTODEVICE through the real kernel: loopback answers on lo, nowhere else."""
    device = units.device("aep-01")
    assert client_for(device, interface="lo").is_commissioned() is False
    assert peer_certificate_sha256(device["address"], device["https_port"], interface="lo") == \
        device["tls_fingerprint_sha256"]
    with pytest.raises(MPowerUnreachable):
        client_for(device, interface="no-such-nic0", timeout=2).is_commissioned()


def test_new_connections_do_not_load_the_ca_bundle_unless_they_verify(units, monkeypatch):
    """The CA bundle costs ~20 ms of CPU per load: connections that are pinned or unchecked never load it (one
    context per process); the pinned one still refuses a mismatch and one that checks certificates still checks."""
    import ssl
    loads = []
    real_load = ssl.SSLContext.load_default_certs
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs",
                        lambda self, *args: (loads.append(1), real_load(self, *args))[1])
    device = units.device("aep-01")
    fingerprint = device["tls_fingerprint_sha256"]
    for _connection in range(3):  # a new client each time: a new connection each time, as after a reboot
        assert client_for(device, fingerprint=fingerprint).is_commissioned() is False
        assert client_for(device).is_commissioned() is False
    assert loads == []
    with pytest.raises(MPowerError, match="not the pinned one"):
        client_for(device, fingerprint="00" * 32).is_commissioned()
    with pytest.raises(MPowerUnreachable, match="TLS error"):
        client_for(device, validate_certs=True).is_commissioned()
