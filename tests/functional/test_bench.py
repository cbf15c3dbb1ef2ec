"""The provisioning bench for real: network namespaces, each with a simulated factory unit at 192.168.2.1 behind
its own veth. provisioning_host addresses the host ends, the conduits inventory finds every unit by its MAC
through its own NIC, and aep_commission then mlinux_upgrade run through every port at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from simulator.images import build_image
from tests.utils.bench import Bench, vrf_supported
from simulator.harness import collections_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")  # CI runs as root

BIN = os.path.dirname(sys.executable)


def _ansible(tool: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_HOST_KEY_CHECKING="True",
               ANSIBLE_FORKS="16")
    return subprocess.run([os.path.join(BIN, tool), *args], capture_output=True, text=True, env=env, timeout=600,
                          check=False)


def _plain(value):
    """ansible-inventory marks what an inventory plugin found as unsafe (never templated); the value inside."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


def _write(path, data) -> str:
    with open(path, "w") as handle:
        if isinstance(data, str):
            handle.write(data)
        else:
            yaml.safe_dump(data, handle, sort_keys=False)
    return str(path)


def test_every_unit_found_by_its_mac_and_provisioned_through_its_own_port(tmp_path):
    with Bench(3, str(tmp_path / "bench"), sim_args=("--reboot-time", "1", "--flash-time", "2")) as bench:
        nm_conf = tmp_path / "NetworkManager" / "conf.d" / "90-bench.conf"
        nm_conf.parent.mkdir(parents=True)
        host = _write(tmp_path / "host.yml", [{
            "name": "Prepare the bench", "hosts": "localhost", "connection": "local", "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "roles": [{"role": "lorawan.conduit.provisioning_host", "provisioning_host_bench_ports": [bench.glob],
                       "provisioning_host_networkmanager_conf": str(nm_conf)}]}])
        planned = _ansible("ansible-playbook", "-i", "localhost,", "--check", host)
        assert "changed=1" in planned.stdout and not nm_conf.exists(), planned.stdout[-2000:]
        assert all("192.168.2.200" not in subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", port.interface], capture_output=True, text=True,
            check=True).stdout for port in bench.ports)
        prepared = _ansible("ansible-playbook", "-i", "localhost,", host)
        assert prepared.returncode == 0, prepared.stdout[-3000:]
        again = _ansible("ansible-playbook", "-i", "localhost,", host)
        assert "changed=0" in again.stdout, again.stdout[-2000:]
        for port in bench.ports:
            shown = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", port.interface], capture_output=True,
                                   text=True, check=True).stdout
            assert "192.168.2.200/24" in shown
            assert f"interface-name:{port.interface}" in nm_conf.read_text()

        provisioning = tmp_path / "provisioning"
        provisioning.mkdir()
        _write(provisioning / "bench.conduits.yml", {
            "plugin": "lorawan.conduit.conduits", "bench_ports": [bench.glob], "name_prefix": "ttn-bench-",
            "timeout": 3.0})
        listed = _ansible("ansible-inventory", "-i", str(provisioning / "bench.conduits.yml"), "--list")
        assert listed.returncode == 0, listed.stderr
        inventory = json.loads(listed.stdout)
        hostvars = {name: {key: _plain(value) for key, value in variables.items()}
                    for name, variables in inventory["_meta"]["hostvars"].items()}
        expected = {"ttn-bench-" + port.mac.replace(":", "-"): port for port in bench.ports}
        assert sorted(hostvars) == sorted(expected)
        for name, port in expected.items():
            assert hostvars[name]["conduit_bind_interface"] == port.interface
            assert hostvars[name]["conduit_mac"] == port.mac
            assert hostvars[name]["conduit_address"] == "192.168.2.1"
            assert hostvars[name]["conduit_state"] == "aep_uncommissioned"
        assert sorted(inventory["new_gateways"]["hosts"]) == sorted(expected)

        images = tmp_path / "images"
        images.mkdir()
        for model in ("mtcdt", "mtcap"):
            build_image(str(images / f"ttni-base-image-{model}-upgrade.bin"), model=model, size=2 * 1024 * 1024)
        _write(provisioning / "secrets.yml", {"all": {"hosts": {
            name: {"conduit_aep_password": "Bench#Pass+1",
                   "conduit_mlinux_password": port.sim.devices[0]["credentials"]["mlinux"]["password"]}
            for name, port in expected.items()}}})
        stages = _write(tmp_path / "stages.yml", [{
            "name": "Commission and flash every unit on the bench at once", "hosts": "new_gateways",
            "connection": "local", "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                     "aep_commission_reboot_timeout": 60,
                     "mlinux_upgrade_image": str(images / "ttni-base-image-{product_type}-upgrade.bin"),
                     "mlinux_upgrade_flash_timeout": 120},
            "tasks": [
                {"name": "Commission", "ansible.builtin.include_role": {"name": "lorawan.conduit.aep_commission", "public": True}},
                {"name": "Flash", "ansible.builtin.include_role": {"name": "lorawan.conduit.mlinux_upgrade", "public": True}},
                {"name": "Each port reached its own unit", "ansible.builtin.assert": {"that": [
                    "aep_commission_result.identity.mac == conduit_mac", "aep_commission_result is changed",
                    "mlinux_upgrade_result is changed",
                    "mlinux_upgrade_result.new_version == '5.3.31'",
                    "mlinux_upgrade_result.flashed"]}},
            ]}])
        provisioned = _ansible("ansible-playbook", "-i", str(provisioning), stages)
        assert provisioned.returncode == 0, provisioned.stdout[-4000:]
        recap = {line.split()[0]: line for line in provisioned.stdout.splitlines() if line.startswith("ttn-bench-")}
        assert sorted(recap) == sorted(expected)
        # each unit's own results say it changed (the assert above); the batch task counts for the first host only
        assert all("failed=0" in line for line in recap.values()), recap
    assert not any(line.startswith(f"lcb-{bench.tag}") for line in subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.splitlines())


def test_the_vrf_option_puts_each_port_into_a_vrf_of_its_own(tmp_path):
    supported, reason = vrf_supported()
    if not supported:
        pytest.skip(f"this kernel makes no VRF devices ({reason}); the rest of the bench needs none")
    with Bench(2, str(tmp_path / "bench"), units=0) as bench:
        host = _write(tmp_path / "host.yml", [{
            "name": "Prepare the bench with VRFs", "hosts": "localhost", "connection": "local",
            "gather_facts": False, "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "roles": [{"role": "lorawan.conduit.provisioning_host", "provisioning_host_bench_ports": [bench.glob],
                       "provisioning_host_vrf": True,
                       "provisioning_host_networkmanager_conf": str(tmp_path / "absent" / "nm.conf")}]}])
        prepared = _ansible("ansible-playbook", "-i", "localhost,", host)
        assert prepared.returncode == 0, prepared.stdout[-3000:]
        try:
            for port in bench.ports:
                master = os.path.basename(os.readlink(f"/sys/class/net/{port.interface}/master"))
                assert master == f"vrf-{port.interface[:11]}"
        finally:
            for port in bench.ports:
                subprocess.run(["ip", "link", "del", f"vrf-{port.interface[:11]}"], capture_output=True, check=False)
