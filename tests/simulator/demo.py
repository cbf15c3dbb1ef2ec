"""``make demo`` until the provisioning playbook exists (issue 9 replaces it):
start a simulated fleet and the jumphost, and show every one of them answering."""

from __future__ import annotations

import subprocess
import tempfile

import base64
import warnings

import paramiko
import requests
import urllib3

from tests.utils.sim import running_simulator


def run_demo(keep: bool = False) -> int:
    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)  # self-signed, as on the device
    workdir = tempfile.mkdtemp(prefix="conduit-demo-")
    args = ["--aep", "3", "--aep-mtcap", "1", "--mlinux", "1", "--jumphost", "--subnet", "127.55.0.0/24"]
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
        if keep:
            print("fleet running; Ctrl-C to stop")
            try:
                sim.process.wait()
            except KeyboardInterrupt:
                pass
        ok = completed.returncode == 0 and all("->" in r[4] or r[4].startswith("ssh: mLinux") for r in rows[:-1])
    print("demo: every simulated device and the jumphost answered" if ok else "demo: something did not answer")
    return 0 if ok else 1
