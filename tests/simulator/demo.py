"""``make demo`` until the provisioning playbook exists (issue 9 replaces it):
start a simulated fleet and the jumphost, show every one of them answering,
then run the stages that exist (commission, flash, identify, register, tunnel, inventory) twice with the
collection's roles: the second run must change nothing."""

from __future__ import annotations

import subprocess
import tempfile

import base64
import os
import sys
import warnings

import paramiko
import requests
import urllib3

from tests.simulator.images import build_image
from tests.utils.sim import collections_root, running_simulator, write_inventory


def _run_stages(sim, workdir: str) -> bool:
    """The stages on the AEP units with the collection's roles, twice: the second run changes nothing."""
    images = os.path.join(workdir, "images")
    os.makedirs(images, exist_ok=True)
    for model in ("mtcdt", "mtcap"):
        build_image(os.path.join(images, f"ttni-base-image-{model}-upgrade.bin"), model=model, size=4 * 1024 * 1024)
    inventory = write_inventory(sim, os.path.join(workdir, "inventory.yml"))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_HOST_KEY_CHECKING="True")
    playbook = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo-stages.yml")
    outcomes = []
    for label in ("first run: from the box to the organisation's inventory", "second run: nothing left to do"):
        print(f"\n=== ansible-playbook lorawan.conduit stages, {label} ===", flush=True)
        done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                               "-e", f"demo_images={images}", playbook], env=env, check=False,
                              capture_output=True, text=True)
        recap = [line for line in done.stdout.splitlines() if line.startswith("aep-")]
        shown = [line.strip() for line in done.stdout.splitlines() if '"msg": "aep-' in line
                 or line.strip().startswith('"make TTN_ORG=')]
        for line in shown + recap:
            print("  " + line.replace('"msg": ', ""))
        if done.returncode != 0:
            print(done.stdout[-3000:])
        outcomes.append((done.returncode, recap))
    first, second = outcomes
    organisation = os.path.join(sim.workdir, "org", "inventory")
    if os.path.exists(os.path.join(organisation, "hosts")):
        print(f"\n=== the organisation's ttn-multitech-cm inventory: {organisation}/hosts ===")
        with open(os.path.join(organisation, "hosts")) as handle:
            print(handle.read().rstrip())
        example = os.path.join(organisation, "host_vars", "aep-01.yml")
        if os.path.exists(example):
            print(f"\n=== {example} ===")
            with open(example) as handle:
                print(handle.read().rstrip())
    return first[0] == 0 and second[0] == 0 and all("changed=0" in line for line in second[1])


def run_demo(keep: bool = False) -> int:
    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)  # self-signed, as on the device
    workdir = tempfile.mkdtemp(prefix="conduit-demo-")
    args = ["--aep", "3", "--aep-mtcap", "1", "--mlinux", "1", "--jumphost", "--subnet", "127.55.0.0/24",
            "--reboot-time", "2", "--flash-time", "3"]
    print(f"starting the simulated fleet (work folder {workdir}) ...", flush=True)
    with running_simulator(args, workdir=workdir) as sim:
        rows = []
        for device in sim.devices:
            if device["firmware"] == "aep":
                url = f"https://{device['address']}:{device['https_port']}/api/commissioning"
                answer = requests.get(url, verify=False, timeout=10).json()  # self-signed, like the real unit
                said = f"GET /api/commissioning -> {answer['code']} {answer['status']}"
            else:
                creds = device["credentials"]["mlinux"]
                client = paramiko.SSHClient()
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
                client.get_host_keys().add(device["address"], device["host_key"].split()[0],
                                           paramiko.RSAKey(data=base64.b64decode(device["host_key"].split()[1])))
                client.connect(device["address"], device["ssh_port"], creds["username"], creds["password"],
                               allow_agent=False, look_for_keys=False, timeout=10)
                _stdin, out, _stderr = client.exec_command("head -n 1 /etc/mlinux-version; mts-io-sysfs show mac-eth")
                said = "ssh: " + " / ".join(out.read().decode().split("\n")[:2])
                client.close()
            rows.append((device["name"], device["product_id"], device["mac"], device["address"], said))
        jump = sim.jumphost
        completed = subprocess.run(
            ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={jump['known_hosts']}",
             "-o", "StrictHostKeyChecking=yes", "-i", jump["admin_key"], "-p", str(jump["port"]),
             f"{jump['admin_user']}@{jump['address']}", "/usr/sbin/sshd -V 2>&1 | head -n 1; id -un"],
            capture_output=True, text=True, timeout=30, check=False)
        rows.append(("jumphost", "OpenSSH sshd", "-", f"{jump['address']}:{jump['port']}",
                     "ssh: " + " / ".join(completed.stdout.split("\n")[:2])))
        widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
        print()
        for row in rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)) + "  " + row[4])
        print(f"\nmanifest: {sim.manifest_path}")
        ok_stages = _run_stages(sim, workdir)
        if keep:
            print("fleet running; Ctrl-C to stop")
            try:
                sim.process.wait()
            except KeyboardInterrupt:
                pass
        ok = ok_stages and completed.returncode == 0 and \
            all("->" in r[4] or r[4].startswith("ssh: mLinux") for r in rows[:-1])
    print("demo: every simulated device and the jumphost answered" if ok else "demo: something did not answer")
    return 0 if ok else 1
