"""The simulated mPower API, driven with plain ``requests`` (reference §3)."""

from __future__ import annotations

import hashlib
import ssl
from urllib.parse import quote

import pytest
import requests

from tests.conftest import port_open, ssh_client, ssh_run
from simulator.harness import wait_until

GOOD_PASSWORD = "Sw0rd#&+ !%x"  # every character the old tool mangled


def api(device, path: str) -> str:
    return f"https://{device['address']}:{device['https_port']}/api/{path}"


def call(method: str, url: str, **kwargs) -> requests.Response:
    # The machine sets REQUESTS_CA_BUNDLE, which overrides a session's verify=False:
    # pass verify on every request.
    return requests.request(method, url, verify=False, timeout=10, **kwargs)


def commission(device, username: str = "mtadm", password: str = GOOD_PASSWORD) -> list[dict]:
    url = api(device, "commissioning")
    steps = []
    first = call("POST", url, json={"username": username, "aasID": "", "aasAnswer": ""}).json()
    steps.append(first)
    aas_id = first["result"]["aasID"]
    for _attempt in range(2):
        reply = call("POST", url, json={"username": username, "aasID": aas_id, "aasAnswer": password}).json()
        steps.append(reply)
        if reply["result"]["aasType"] == "error":
            break
    return steps


def login(device, password: str = GOOD_PASSWORD) -> requests.Response:
    return call("GET", api(device, f"login?username=mtadm&password={quote(password, safe='')}"))


@pytest.fixture
def aep(sim_factory):
    sim = sim_factory("--aep", "1", "--reboot-time", "1")
    return sim, sim.device("aep-01")


def test_commissioning_dialogue_with_punctuation(aep):
    sim, device = aep
    assert call("GET", api(device, "commissioning")).json() == {
        "code": 200, "status": "success", "result": {"aasID": "", "aasType": "", "aasMsg": "", "username": ""}}
    steps = commission(device)
    assert [s["result"]["aasType"] for s in steps] == ["password", "password", "info"]
    assert steps[0]["result"]["aasID"] == steps[2]["result"]["aasID"] != ""
    after = call("GET", api(device, "commissioning"))
    assert after.status_code == 400
    assert after.json() == {"code": 400, "status": "fail", "error": "commissioning is finished"}
    again = call("POST", api(device, "commissioning"), json={"username": "x", "aasID": "", "aasAnswer": ""})
    assert again.status_code == 400
    assert sim.live("aep-01")["state"] == "aep"


@pytest.mark.parametrize("password, reason", [
    ("short1!", "at least 8 characters"),
    ("alllowercase", "at least three"),
])
def test_rejected_password_keeps_device_uncommissioned(aep, password, reason):
    sim, device = aep
    steps = commission(device, password=password)
    assert steps[-1]["result"]["aasType"] == "error"
    assert reason in steps[-1]["result"]["aasMsg"]
    assert call("GET", api(device, "commissioning")).status_code == 200
    assert sim.live("aep-01")["mpower"]["commissioned"] is False


def test_confirmation_must_match(aep):
    sim, device = aep
    url = api(device, "commissioning")
    aas = call("POST", url, json={"username": "mtadm", "aasID": "", "aasAnswer": ""}).json()["result"]["aasID"]
    call("POST", url, json={"username": "mtadm", "aasID": aas, "aasAnswer": GOOD_PASSWORD})
    reply = call("POST", url, json={"username": "mtadm", "aasID": aas, "aasAnswer": GOOD_PASSWORD + "x"}).json()
    assert reply["result"] == {"aasID": aas, "aasType": "error", "aasMsg": "Passwords do not match"}
    assert sim.live("aep-01")["mpower"]["commissioned"] is False


def test_login_token_query_and_cookie_and_unencoded_password_fails(aep):
    sim, device = aep
    commission(device)
    response = login(device)
    assert response.status_code == 200
    token = response.json()["result"]["token"]
    assert len(token) == 32 and token == token.upper() and int(token, 16) >= 0
    assert response.cookies.get("token") == token
    # the old tool's bug: the password left unencoded in the query string
    raw = call("GET", api(device, f"login?username=mtadm&password={GOOD_PASSWORD}"))
    assert raw.status_code == 401
    assert raw.json() == {"code": 401, "status": "fail", "error": "Invalid username or password"}
    by_query = call("GET", api(device, f"system?token={token}")).json()["result"]
    by_cookie = call("GET", api(device, "system"), cookies={"token": token}).json()["result"]
    assert by_query == by_cookie
    assert by_query["productId"] == device["product_id"]
    assert by_query["deviceId"] == device["serial"]
    assert by_query["macAddress"].lower() == device["mac"]
    assert by_query["loraEui"].lower() == device["lora_eui"]
    assert call("GET", api(device, "system?token=0000")).status_code == 401
    assert call("GET", api(device, "system")).json()["error"] == "Authentication required"


def test_malformed_requests_get_the_error_envelope(aep):
    sim, device = aep
    bad_json = call("POST", api(device, "commissioning"), data="{not json",
                    headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["status"] == "fail"
    assert call("GET", api(device, "no/such/thing")).json() == {
        "code": 404, "status": "fail", "error": "Resource not found: /api/no/such/thing"}
    commission(device)
    token = login(device).json()["result"]["token"]
    bad_port = call("PUT", api(device, f"remoteAccess?token={token}"), json={"ssh": {"port": "22"}})
    assert bad_port.status_code == 400
    assert bad_port.json()["error"] == "ssh.port must be an integer between 1 and 65535"
    assert sim.live("aep-01")["phase"] == "up"


def test_revert_save_restart_and_ssh(aep):
    sim, device = aep
    commission(device)
    token = login(device).json()["result"]["token"]
    remote = call("GET", api(device, f"remoteAccess?token={token}")).json()["result"]
    assert remote["ssh"]["enabled"] is False
    remote["ssh"].update(enabled=True, lan=True, wan=False, port=22)
    assert call("PUT", api(device, f"remoteAccess?token={token}"), json=remote).status_code == 200
    assert call("GET", api(device, f"system?token={token}")).json()["result"]["dbDirty"] is True
    call("POST", api(device, f"command/revert?token={token}"))
    assert call("GET", api(device, f"remoteAccess?token={token}")).json()["result"]["ssh"]["enabled"] is False
    # a restart applies the saved configuration only: unsaved SSH stays off
    call("PUT", api(device, f"remoteAccess?token={token}"), json=remote)
    assert not port_open(device["address"], device["ssh_port"])
    call("POST", api(device, f"command/save?token={token}"))
    assert call("POST", api(device, f"command/restart?token={token}")).status_code == 200
    wait_until(lambda: not port_open(device["address"], device["https_port"]), 10, "HTTPS down during restart")
    assert sim.live("aep-01")["state"] == "down"
    sim.wait_state("aep-01", "aep", timeout=20)
    assert port_open(device["address"], device["ssh_port"])
    # tokens do not survive a reboot
    assert call("GET", api(device, f"system?token={token}")).status_code == 401
    client = ssh_client(device["address"], device["ssh_port"], "mtadm", GOOD_PASSWORD)
    try:
        assert ssh_run(client, "echo ping").stdout == "ping\n"
        sudo = ssh_run(client, "sudo -S -p '' id -u", stdin=(GOOD_PASSWORD + "\n").encode())
        assert (sudo.status, sudo.stdout) == (0, "0\n")
        wrong = ssh_run(client, "sudo -S -p '' id -u", stdin=b"nope\nnope\nnope\n")
        assert wrong.status == 1 and "3 incorrect password attempts" in wrong.stderr
    finally:
        client.close()
    kinds = [(e.get("method"), e.get("path")) for e in sim.events("aep-01") if e["kind"] == "http"]
    assert ("POST", "/api/command/restart") in kinds


def test_tls_certificate_is_self_signed_and_pinnable(aep):
    sim, device = aep
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((device["address"], device["https_port"])))
    assert hashlib.sha256(der).hexdigest() == device["tls_fingerprint_sha256"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(api(device, "commissioning"), timeout=10, verify=True)


def test_slow_boot_refuses_then_answers(sim_factory):
    sim = sim_factory("--aep", "1", "--device", "aep-01:startup_delay=2")
    device = sim.device("aep-01")
    assert sim.live("aep-01")["state"] == "down"
    assert not port_open(device["address"], device["https_port"])
    sim.wait_state("aep-01", "aep_uncommissioned", timeout=20)
    assert call("GET", api(device, "commissioning")).status_code == 200
