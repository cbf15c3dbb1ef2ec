"""The device SSH session (plugins/module_utils/_device_ssh.py) against simulated units."""

from __future__ import annotations

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import (
    DeviceAuthError,
    DeviceSession,
    DeviceUnreachable,
    HostKeyMismatch,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import key_fingerprint
from simulator.images import build_image


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    from tests.conftest import _next_subnet
    from simulator.harness import start_simulator
    sim = start_simulator(["--subnet", _next_subnet(), "--mlinux", "1", "--aep", "1", "--volatile-mib", "200",
                           "--device", "aep-01:commissioned=1,ssh_enabled=1"],
                          workdir=str(tmp_path_factory.mktemp("units")))
    yield sim
    sim.stop()


def session(device, **kwargs):
    creds = device["credentials"]["mlinux"]
    kwargs.setdefault("password", creds["password"])
    return DeviceSession(device["address"], device["ssh_port"], kwargs.pop("username", "mtadm"), **kwargs)


def test_pinned_key_accepted_and_a_changed_key_refused(units):
    device = units.device("mlinux-01")
    with session(device, host_key=device["host_key"]) as ssh:
        assert ssh.run("id -u").stdout == "1000\n"
    other = units.device("mlinux-01")["host_key"].split()
    forged = "ssh-rsa " + other[1][:-8] + "AAAAAAAA"
    with pytest.raises(HostKeyMismatch) as caught:
        session(device, host_key=forged).connect()
    assert key_fingerprint(device["host_key"]) in caught.value.message
    assert "host key changed" in caught.value.message


def test_first_contact_records_the_key(units):
    device = units.device("mlinux-01")
    with session(device) as ssh:
        assert ssh.host_key_seen.split()[:2] == device["host_key"].split()[:2]


def test_refused_credentials_say_what_was_tried(units, tmp_path):
    device = units.device("mlinux-01")
    with pytest.raises(DeviceAuthError, match="mtadm refused password"):
        session(device, password="wrong").connect()
    with pytest.raises(DeviceUnreachable):
        DeviceSession(device["address"], 1, "mtadm", password="x", timeout=2).connect()


def test_output_that_comes_after_the_exit_status_is_kept(units):
    device = units.device("mlinux-01")
    # the shell exits at once; its child writes only once sshd has reaped the shell, so sshd sends the exit
    # status before that output: a reader that stopped at the exit status lost it (df under load, in CI)
    late = "sh -c '( while kill -0 $$ 2>/dev/null; do :; done; echo late; echo late-err >&2 ) & exit 3'"
    with session(device) as ssh:
        for attempt in range(5):
            result = ssh.run(late)
            assert (result.status, result.stdout, result.stderr) == (3, "late\n", "late-err\n"), attempt


def test_sudo_password_on_stdin(units):
    device = units.device("mlinux-01")
    with session(device) as ssh:
        assert ssh.sudo("id -u").stdout == "0\n"
        assert ssh.sudo("sh -c 'cat > /etc/from-stdin; cat /etc/from-stdin'", stdin=b"data\n").stdout == "data\n"
    with session(device) as ssh, pytest.raises(DeviceAuthError, match="sudo refused the password"):
        ssh.sudo("id -u", password="wrong")


def test_upload_resumes_after_a_drop(units, tmp_path):
    device = units.device("aep-01")
    image = build_image(str(tmp_path / "big.bin"), size=96 * 1024 * 1024)
    units.set_knobs("aep-01", drop_upload_after=80 * 1024 * 1024)
    sent = []
    ssh = DeviceSession(device["address"], device["ssh_port"], "mtadm",
                        password=device["credentials"]["aep"]["password"]).connect()
    try:
        attempts = ssh.upload(image.path, "/tmp/big.bin", progress=lambda done, total: sent.append(done))
        assert attempts == 2
        assert ssh.sha256("/tmp/big.bin") == image.sha256
    finally:
        ssh.close()
    restarts = [later for earlier, later in zip(sent, sent[1:]) if later < earlier]
    assert len(restarts) == 1 and restarts[0] > 40 * 1024 * 1024, "the second attempt resumed, it did not restart"


def test_session_bound_to_an_interface(units):
    device = units.device("mlinux-01")
    with session(device, interface="lo") as ssh:
        assert ssh.run("echo bound").stdout == "bound\n"
    with pytest.raises(DeviceUnreachable):
        session(device, interface="no-such-nic0", timeout=2).connect()
