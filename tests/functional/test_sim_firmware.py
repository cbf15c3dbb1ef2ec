"""Upload and flash on the simulated AEP unit: SFTP (paramiko and OpenSSH), checks, reboot into mLinux."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from tests.conftest import port_open, ssh_client, ssh_run
from simulator.images import build_image
from simulator.harness import wait_until

PASSWORD = None  # filled from the manifest: the simulator commissioned the unit


@pytest.fixture
def ready_aep(sim_factory):
    """One commissioned AEP unit with SSH enabled (as aep_commission leaves it)."""
    sim = sim_factory("--aep", "1", "--flash-time", "1", "--device", "aep-01:commissioned=1,ssh_enabled=1")
    device = sim.device("aep-01")
    return sim, device, device["credentials"]["aep"]["password"]


def upload(device, password, local, remote="/tmp/firmware.bin"):
    client = ssh_client(device["address"], device["ssh_port"], "mtadm", password)
    try:
        with client.open_sftp() as sftp:
            sftp.put(local, remote)
    finally:
        client.close()


def run(device, password, command, sudo_password=None):
    client = ssh_client(device["address"], device["ssh_port"], "mtadm", password)
    try:
        stdin = (sudo_password + "\n").encode() if sudo_password else None
        return ssh_run(client, command, stdin=stdin)
    finally:
        client.close()


def test_good_image_flashes_into_mlinux(ready_aep, tmp_path):
    sim, device, password = ready_aep
    image = build_image(str(tmp_path / "good.bin"), model="mtcdt", size=2 * 1024 * 1024, version="5.3.99")
    upload(device, password, image.path)
    sums = run(device, password, "sha256sum /tmp/firmware.bin")
    assert sums.stdout.split()[0] == image.sha256
    result = run(device, password, "sudo -S -p '' /usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin",
                 sudo_password=password)
    # ttn-multitech-cm's script on an AEP unit (no /etc/mlinux-version: it echoes): busybox's reboot returns at
    # once, the script says so and exits 1 within the unit's shutdown grace
    assert result.status == 1 and result.stdout.endswith("Rebooting\nReboot failed\n"), result
    assert "Checking MD5 for rootfs.jffs2..." in result.stdout
    assert result.stdout.count("-: OK") == 2
    mlinux = sim.wait_state("aep-01", "mlinux", timeout=30)
    assert mlinux["mlinux_version"] == "5.3.99"
    # what the unit's syslog said before the flash ended it: the upload and the upgrade, as tests look for them
    seen = [(event["kind"], event.get("path") or event.get("command")) for event in sim.events("aep-01")]
    assert ("sftp-open", "/tmp/firmware.bin") in seen
    assert ("firmware-upgrade", "/usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin") in seen
    assert not port_open(device["address"], device["https_port"]), "mLinux serves no mPower API"
    creds = device["credentials"]["mlinux"]  # the live view carries no secrets
    client = ssh_client(mlinux["address"], mlinux["ssh_port"], "mtadm", creds["password"])
    try:
        assert ssh_run(client, "head -n 1 /etc/mlinux-version").stdout == "mLinux 5.3.99\n"
        assert ssh_run(client, "test -e /tmp/firmware.bin").status == 1, "tmpfs is empty after the reboot"
    finally:
        client.close()
    with pytest.raises(Exception):
        ssh_client(device["address"], device["ssh_port"], "mtadm", password)


@pytest.mark.parametrize("defect, message", [
    ("wrong-model", "Wrong firmware for this hardware"),
    ("bad-md5", "MD5 check failed, upgrade aborted"),
    ("truncated", "tar: Unexpected EOF in archive"),
    ("not-tar", "tar: "),  # the script's `set -e` ends it where tar fails
    ("missing-model", "tar: model: Not found in archive"),
])
def test_broken_images_are_refused_and_nothing_reboots(ready_aep, tmp_path, defect, message):
    sim, device, password = ready_aep
    image = build_image(str(tmp_path / f"{defect}.bin"), model="mtcdt", size=1024 * 1024, defect=defect)
    upload(device, password, image.path)
    result = run(device, password, "sudo -S -p '' /usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin",
                 sudo_password=password)
    assert result.status not in (0, None)
    assert message in result.stdout + result.stderr, result
    assert "Rebooting" not in result.stdout + result.stderr
    live = sim.live("aep-01")
    assert (live["state"], live["phase"]) == ("aep", "up")
    assert not any(e["kind"] == "reboot" for e in sim.events("aep-01"))


def test_upgrade_needs_root(ready_aep, tmp_path):
    sim, device, password = ready_aep
    upload(device, password, build_image(str(tmp_path / "good.bin"), size=512 * 1024).path)
    result = run(device, password, "/usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin")
    assert result.status not in (0, None) and "Permission denied" in result.stderr, result
    assert "Rebooting" not in result.stdout
    assert sim.live("aep-01")["phase"] == "up"


def test_cellular_unit_needs_the_umountfs_fix(sim_factory, tmp_path):
    sim = sim_factory("--aep", "1", "--flash-time", "0.5", "--reboot-time", "0.5",
                      "--device", "aep-01:commissioned=1,ssh_enabled=1,cellular=1")
    device = sim.device("aep-01")
    password = device["credentials"]["aep"]["password"]
    assert device["product_id"] == "MTCDT-L4N1-247A"
    image = build_image(str(tmp_path / "good.bin"), size=1024 * 1024)
    flash = "sudo -S -p '' /usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin"
    upload(device, password, image.path)
    run(device, password, flash, sudo_password=password)
    wait_until(lambda: any(e["kind"] == "flash-skipped" for e in sim.events("aep-01")), 20, "flash skipped")
    sim.wait_state("aep-01", "aep", timeout=20)
    upload(device, password, image.path)
    # the conversion runbook's line
    fix = run(device, password, "sudo -S -p '' sed -i -e '/if.*mts_fw_check_hw_support/s/if.*/if false ; then # &/' "
                                "/etc/init.d/umountfs", sudo_password=password)
    assert fix.status == 0, fix.stderr
    run(device, password, flash, sudo_password=password)
    sim.wait_state("aep-01", "mlinux", timeout=20)


def test_connection_dropped_mid_upload(sim_factory, tmp_path):
    sim = sim_factory("--aep", "1", "--device", "aep-01:commissioned=1,ssh_enabled=1,drop_upload_after=1048576")
    device = sim.device("aep-01")
    password = device["credentials"]["aep"]["password"]
    image = build_image(str(tmp_path / "img.bin"), size=4 * 1024 * 1024)
    with pytest.raises(Exception):
        upload(device, password, image.path)
    assert any(e.get("detail") == "connection dropped mid-upload" for e in sim.events("aep-01"))
    upload(device, password, image.path)  # the fault fires once
    assert run(device, password, "md5sum /tmp/firmware.bin").stdout.split()[0] == \
        hashlib.md5(open(image.path, "rb").read()).hexdigest()


def test_never_returns_until_the_fault_is_cleared(sim_factory, tmp_path):
    sim = sim_factory("--aep", "1", "--flash-time", "0.2",
                      "--device", "aep-01:commissioned=1,ssh_enabled=1,never_return=1")
    device = sim.device("aep-01")
    password = device["credentials"]["aep"]["password"]
    upload(device, password, build_image(str(tmp_path / "img.bin"), size=512 * 1024).path)
    run(device, password, "sudo -S -p '' /usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin",
        sudo_password=password)
    wait_until(lambda: any(e["kind"] == "never-return" for e in sim.events("aep-01")), 20, "flash stalled")
    assert sim.live("aep-01")["state"] == "down"
    assert not port_open(device["address"], device["ssh_port"])
    sim.clear_fault("aep-01")
    sim.wait_state("aep-01", "mlinux", timeout=20)


def test_full_tmpfs_refuses_the_upload(sim_factory, tmp_path):
    sim = sim_factory("--aep", "1", "--volatile-mib", "1", "--device", "aep-01:commissioned=1,ssh_enabled=1")
    device = sim.device("aep-01")
    password = device["credentials"]["aep"]["password"]
    df = run(device, password, "df -k /tmp")
    assert df.stdout.splitlines()[1].split()[1] == "1024"
    image = build_image(str(tmp_path / "img.bin"), size=2 * 1024 * 1024)
    # paramiko pipelines its writes and reports the refused ones as a short file
    with pytest.raises(OSError, match="No space left on device|size mismatch"):
        upload(device, password, image.path)
    size = run(device, password, "stat -c %s /tmp/firmware.bin").stdout.strip()
    assert int(size) <= 1024 * 1024 < image.size


def test_openssh_sftp_and_scp_upload(ready_aep, tmp_path):
    sim, device, password = ready_aep
    image = build_image(str(tmp_path / "img.bin"), size=1024 * 1024)
    common = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error",
              "-o", "PubkeyAuthentication=no", "-o", "BatchMode=no", "-P", str(device["ssh_port"])]
    env = dict(os.environ, SSHPASS=password)
    for tool, target in (("scp", "/tmp/by-scp.bin"), ("scp-O", "/tmp/by-legacy-scp.bin")):
        argv = ["sshpass", "-e", "scp"] + (["-O"] if tool == "scp-O" else []) + common + \
            [image.path, f"mtadm@{device['address']}:{target}"]
        completed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert completed.returncode == 0, f"{tool}: {completed.stderr}"
    batch = f"put {image.path} /tmp/by-sftp.bin\n"
    # -b implies BatchMode=yes unless BatchMode=no comes first (the first value wins)
    completed = subprocess.run(["sshpass", "-e", "sftp"] + common + ["-b", "-", f"mtadm@{device['address']}"],
                               input=batch, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    sums = run(device, password, "sha256sum /tmp/by-scp.bin /tmp/by-legacy-scp.bin /tmp/by-sftp.bin")
    assert [line.split()[0] for line in sums.stdout.splitlines()] == [image.sha256] * 3
