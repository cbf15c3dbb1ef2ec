"""The re-flash flow of provision.yml, with the README's command: a provisioned gateway flashed again in the field
(the same MAC and serial, new host keys, /var/config kept) is refused until the operator says it was re-flashed;
then the same run accepts its new keys, puts its new key on the jumphost with its port kept, and its tunnel and
make ping's path work again."""

from __future__ import annotations

import os

import pytest
import yaml

from simulator.harness import latest_report, ledger_folder, provision, wait_until, write_provisioning
from simulator.images import build_image
from tests.conftest import ssh_client, ssh_run
from tests.functional.test_tunnels import _listing

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

PREFIX = "ttn-rf-"


def _flash_again(sim, device: dict, tmp_path) -> None:
    """What an operator's manual re-flash does: the image up, ttn-multitech-cm's mlinux-firmware-upgrade on it; back
    once the simulator says the unit flashed and is up."""
    seen = len(sim.events(device["name"]))
    image = build_image(str(tmp_path / "again.bin"), device["product_type"], 1 << 20, "5.3.31")
    password = device["credentials"]["mlinux"]["password"]
    client = ssh_client(device["address"], device["ssh_port"], "mtadm", password)
    try:
        sftp = client.open_sftp()
        sftp.put(image.path, "/tmp/firmware.bin")
        sftp.close()
        ssh_run(client, "sudo -S -p '' /usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin",
                stdin=password.encode() + b"\n")
    finally:
        client.close()
    wait_until(lambda: any(event["kind"] == "flashed" for event in sim.events(device["name"])[seen:])
               and sim.live(device["name"])["phase"] == "up", 120, "the unit flashed again and up")


def test_a_reflashed_gateway_is_refused_then_taken_back_with_its_port(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "1", "--jumphost", "--device", "mlinux-01:keep_host_keys=0")
    provisioning = write_provisioning(sim, str(tmp_path), prefix=PREFIX,
                                      addresses=[device["address"] for device in sim.devices])
    assert provision(provisioning).returncode == 0
    name = next(entry[:-4] for entry in os.listdir(ledger_folder(provisioning)) if entry.endswith(".yml"))
    path = os.path.join(ledger_folder(provisioning), name + ".yml")
    with open(path) as handle:
        before = yaml.safe_load(handle)
    listed = _listing(provisioning, PREFIX.rstrip("-"))[name]

    _flash_again(sim, sim.devices[0], tmp_path)
    refused = provision(provisioning, "-e", "provision_hosts=provisioned")
    assert refused.returncode == 2, refused.stdout[-3000:]
    reason = latest_report(provisioning)["gateways"][name]["stages"]["identify"]["reason"]
    assert "host key changed" in reason and "reflashed=true (role: gateway_facts_reflashed=true)" in reason

    taken = provision(provisioning, "-e", "provision_hosts=provisioned", "-e", "gateway_facts_reflashed=true")
    assert taken.returncode == 0, taken.stdout[-3000:]
    with open(path) as handle:
        after = yaml.safe_load(handle)
    assert after["identity"]["mac"] == before["identity"]["mac"]
    assert after["host_keys"]["rsa"] != before["host_keys"]["rsa"]
    assert after["history"][-1]["event"] == "re-flashed, new host keys accepted"
    assert after["jumphost"]["tunnel_port"] == before["jumphost"]["tunnel_port"]
    now = _listing(provisioning, PREFIX.rstrip("-"))[name]
    assert now["port"] == listed["port"] and now["key_fingerprint"] != listed["key_fingerprint"]
    assert now["listening"]
    assert latest_report(provisioning)["gateways"][name]["stages"]["accept"]["status"] == "done"
