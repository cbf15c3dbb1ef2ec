"""``make demo``: start a simulated fleet (AEP units of both product types, an mLinux unit) and a real sshd
jumphost, show every one of them answering, fill inventory_template/provisioning in for it, and run
``ansible-playbook lorawan.conduit.provision`` twice: from the box to the organisation's inventory, then
over the provisioned gateways, where nothing may change; then ``lorawan.conduit.health`` over them, through the
jumphost. Shows the reports and the inventory it wrote."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import warnings

import paramiko
import requests
import urllib3

from simulator.harness import collections_root, running_simulator, write_provisioning


def _run_stages(sim, workdir: str) -> bool:
    """``ansible-playbook lorawan.conduit.provision`` on the simulated fleet, twice: the second run changes nothing."""
    mlinux = [device["address"] for device in sim.devices if device["firmware"] == "mlinux"]
    provisioning = write_provisioning(sim, workdir, prefix="ttn-demo-", addresses=mlinux,
                                      networks=[str(sim.manifest["simulator"]["subnet"])])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_HOST_KEY_CHECKING="True")
    playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    outcomes = []
    for label, extra in (("first run: from the box to the organisation's inventory", ["-l", "new_gateways"]),
                         ("second run, over the provisioned gateways: nothing left to do",
                          ["-e", "provision_hosts=provisioned"])):
        command = [playbook_bin, "lorawan.conduit.provision", "-i", provisioning + "/", *extra]
        print(f"\n=== {label} ===\n$ ansible-playbook lorawan.conduit.provision -i provisioning/ {' '.join(extra)}",
              flush=True)
        done = subprocess.run(command, env=env, check=False, capture_output=True, text=True)
        recap = [line for line in done.stdout.splitlines() if line.startswith("ttn-demo-")]
        report = _report_lines(done.stdout)
        for line in report + [""] + recap:
            print("  " + line)
        if done.returncode != 0:
            print(done.stdout[-3000:])
        outcomes.append((done.returncode, recap))
    print("\n=== day two: the fleet's health, through the jumphost ===\n"
          "$ ansible-playbook lorawan.conduit.health -i provisioning/", flush=True)
    health = subprocess.run([playbook_bin, "lorawan.conduit.health", "-i", provisioning + "/"], env=env, check=False,
                            capture_output=True, text=True)
    for line in _report_lines(health.stdout):
        print("  " + line)
    if health.returncode != 0:
        print(health.stdout[-3000:])
    first, second = outcomes
    organisation = os.path.join(workdir, "org", "inventory")
    print(f"\n=== the organisation's ttn-multitech-cm inventory: {organisation}/hosts ===")
    with open(os.path.join(organisation, "hosts")) as handle:
        print(handle.read().rstrip())
    written = sorted(os.listdir(os.path.join(organisation, "host_vars")))
    example = next((os.path.join(organisation, "host_vars", name) for name in written if name.endswith(".yml")), None)
    if example:
        print(f"\n=== {example} ===")
        with open(example) as handle:
            print(handle.read().rstrip())
    return first[0] == 0 and second[0] == 0 and len(first[1]) >= 4 and \
        all("changed=0" in line for line in second[1]) and len(second[1]) == len(first[1]) and health.returncode == 0


def _report_lines(stdout: str) -> list[str]:
    """The report the playbook printed (the debug message of its last task)."""
    lines, inside = [], False
    for line in stdout.splitlines():
        if "TASK [Show the report]" in line:
            inside = True
        elif inside and line.startswith("PLAY RECAP"):
            break
        elif inside and line.strip().startswith('"') and not line.strip().startswith('"msg"'):
            lines.append(json.loads(line.strip().rstrip(",")))
    return lines


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
