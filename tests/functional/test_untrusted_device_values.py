"""Values a unit sends are untrusted: planted Jinja, shell words, YAML or control characters in what mts-io-sysfs or
/etc/mlinux-version answer stop that gateway at the identify stage with the value shown inert, nothing of it
reaches the ledger or the organisation's inventory, and no later Ansible run over that inventory evaluates it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from simulator.harness import (
    collections_root,
    latest_report,
    ledger_folder,
    provision,
    report_folder,
    write_provisioning,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)


def _plant(device: dict, path: str, text: str) -> None:
    """Change a file inside a running unit, as whoever tampered with it would."""
    host = os.path.join(device["unit_root"], path.lstrip("/"))
    os.chmod(host, 0o644)
    with open(host, "w") as handle:
        handle.write(text)


def test_planted_values_stop_their_gateway_and_are_never_evaluated(sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "6", "--jumphost")
    marker = tmp_path / "evaluated"
    jinja = "{{ lookup('ansible.builtin.pipe', 'touch %s') }}" % marker
    sysfs = "/sys/devices/platform/mts-io"
    planted = {
        "mlinux-01": (f"{sysfs}/lora/hw-version", jinja + "\n", "lora_hw_version"),
        "mlinux-02": ("/etc/mlinux-version", f"mLinux 5.3.31$(touch {marker})\nBuilt from branch: x\n",
                      "mlinux_version"),
        "mlinux-03": (f"{sysfs}/product-id", "MTCDT-246A: [unclosed\n", "product_id"),
        "mlinux-04": (f"{sysfs}/device-id", "1234\x1b[2J5678\n", "serial"),
    }
    for name, (path, text, _key) in planted.items():
        _plant(sim.device(name), path, text)
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-uv-",
                                      addresses=[device["address"] for device in sim.devices])
    done = provision(provisioning, "-l", "new_gateways", "-e", "provision_max_fail_percentage=100")
    assert done.returncode == 2, done.stdout[-3000:]
    report = latest_report(provisioning)
    name_of = {device["name"]: "ttn-uv-" + device["address"].replace(".", "-") for device in sim.devices}
    assert sorted(report["failed"]) == sorted(name_of[unit] for unit in planted)
    assert sorted(report["ready"]) == sorted(name_of[unit] for unit in ("mlinux-05", "mlinux-06"))
    host_vars = os.path.join(str(tmp_path), "org", "inventory", "host_vars")
    for unit, (_path, _text, key) in planted.items():
        gateway = name_of[unit]
        identify = report["gateways"][gateway]["stages"]["identify"]
        assert identify["status"] == "failed"
        assert "which no Conduit says; none of its values was recorded" in identify["reason"], identify
        assert f"answered {key} '" in identify["reason"], identify
        assert not os.path.exists(os.path.join(host_vars, gateway + ".yml"))
        ledger_file = os.path.join(ledger_folder(provisioning), gateway + ".yml")
        with open(ledger_file) as handle:  # the failure is filed, inert; nothing the unit said is recorded as such
            filed = handle.read()
        assert "identity" not in filed and "{{" not in filed and "$(" not in filed and "\x1b" not in filed
        assert yaml.safe_load(filed)["stages"]["identify"]["reason"] == identify["reason"]
    reports = report_folder(provisioning)
    for name in os.listdir(reports):  # the run's JSON and Markdown reports show the values inert
        with open(os.path.join(reports, name)) as handle:
            text = handle.read()
        assert "{{" not in text and "$(" not in text and "\x1b" not in text and "\\u001b[2J" not in text, name
    assert "mlinux_version '" in json.dumps(report)

    # every later Ansible run over the organisation's inventory: nothing planted is evaluated
    inventory = os.path.join(str(tmp_path), "org", "inventory")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root())
    listed = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", inventory, "--list"], capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    shown = subprocess.run([os.path.join(BIN, "ansible"), "-i", inventory, "conduits", "-m", "ansible.builtin.debug",
                            "-a", "var=hostvars[inventory_hostname]"], capture_output=True, text=True, env=env,
                           timeout=120, check=False)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    assert "lorawan_conduit_lora_hw_version" in shown.stdout  # the clean gateways' values are there
    assert not marker.exists()
