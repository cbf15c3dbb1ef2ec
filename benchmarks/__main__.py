"""Test-bed benchmarks: fleet start-up and upload speed into a simulated device.

Writes ``benchmarks/results/<date>.json`` and ``.md``. Targets (issue 2):
``serve --aep 64`` ready in under 10 s; OpenSSH ``sftp`` of 64 MB into a
simulated device at 50 MB/s or more (the simulator must never be the
bottleneck of a later benchmark).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from tests.simulator.images import build_image
from tests.utils.sim import start_simulator

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _one_unit(size_mib: int, subnet: str):
    """An image of ``size_mib`` and a simulator with one commissioned AEP unit with room for it."""
    workdir = tempfile.mkdtemp(prefix="bench-unit-")
    image = build_image(os.path.join(workdir, "image.bin"), size=size_mib * 1024 * 1024)
    sim = start_simulator(["--aep", "1", "--volatile-mib", str(size_mib * 3), "--subnet", subnet,
                           "--device", "aep-01:commissioned=1,ssh_enabled=1"], workdir=workdir)
    return image, sim


def fleet_startup(runs: int = 3) -> dict:
    walls = []
    for run in range(runs):
        begin = time.monotonic()
        sim = start_simulator(["--aep", "64", "--subnet", f"127.40.{run}.0/24"],
                              workdir=tempfile.mkdtemp(prefix="bench-start-"))
        walls.append(time.monotonic() - begin)
        sim.stop()
    return {"devices": 64, "runs": runs, "wall_s": walls, "median_s": statistics.median(walls), "target_s": 10}


def sftp_upload(size_mib: int = 64, runs: int = 3) -> dict:
    image, sim = _one_unit(size_mib, "127.41.0.0/24")
    try:
        device = sim.device("aep-01")
        env = dict(os.environ, SSHPASS=device["credentials"]["aep"]["password"])
        rates = []
        for run in range(runs):
            begin = time.monotonic()
            subprocess.run(["sshpass", "-e", "sftp", "-o", "StrictHostKeyChecking=no", "-o",
                            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error", "-o", "PubkeyAuthentication=no",
                            "-o", "BatchMode=no", "-P", str(device["ssh_port"]), "-b", "-",
                            f"mtadm@{device['address']}"], input=f"put {image.path} /tmp/run{run}.bin\nrm /tmp/run{run}.bin\n",
                           env=env, text=True, check=True, capture_output=True, timeout=300)
            rates.append(image.size / (time.monotonic() - begin) / 1e6)
    finally:
        sim.stop()
    return {"bytes": image.size, "runs": runs, "mb_per_s": rates, "median_mb_per_s": statistics.median(rates),
            "target_mb_per_s": 50}


UPLOAD_CHILD = """
import resource, sys, time
sys.path.insert(0, sys.argv[5])
from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import DeviceSession
ssh = DeviceSession(sys.argv[1], int(sys.argv[2]), "mtadm", password=sys.argv[3]).connect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.monotonic()
ssh.upload(sys.argv[4], "/tmp/bench.bin")
seconds = time.monotonic() - began
ssh.check("rm -f /tmp/bench.bin")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(seconds, before, after)
"""


def _upload_child(device: dict, password: str, image_path: str) -> tuple[float, int, int]:
    collections = os.path.join(os.path.dirname(RESULTS), "..", ".build", "collections")
    out = subprocess.run([sys.executable, "-c", UPLOAD_CHILD, device["address"], str(device["ssh_port"]), password,
                          image_path, os.path.abspath(collections)], capture_output=True, text=True, check=True,
                         timeout=600).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def upload_vs_scp(size_mib: int = 64, runs: int = 3) -> dict:
    """mlinux_upgrade's uploader (paramiko SFTP) against OpenSSH scp, same file, same device, interleaved."""
    image, sim = _one_unit(size_mib, "127.42.0.0/24")
    try:
        device = sim.device("aep-01")
        password = device["credentials"]["aep"]["password"]
        env = dict(os.environ, SSHPASS=password)
        ours, scp = [], []
        for run in range(runs):
            seconds, _before, _after = _upload_child(device, password, image.path)
            ours.append(image.size / seconds / 1e6)
            begin = time.monotonic()
            subprocess.run(["sshpass", "-e", "scp", "-o", "StrictHostKeyChecking=no", "-o",
                            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error", "-o", "PubkeyAuthentication=no",
                            "-P", str(device["ssh_port"]), image.path, f"mtadm@{device['address']}:/tmp/scp{run}.bin"],
                           env=env, check=True, timeout=300)
            scp.append(image.size / (time.monotonic() - begin) / 1e6)
            subprocess.run(["sshpass", "-e", "ssh", "-o", "StrictHostKeyChecking=no", "-o",
                            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=error", "-o", "PubkeyAuthentication=no",
                            "-p", str(device["ssh_port"]), f"mtadm@{device['address']}", f"rm /tmp/scp{run}.bin"],
                           env=env, check=True, timeout=60)
    finally:
        sim.stop()
    ratio = statistics.median(o / s for o, s in zip(ours, scp))
    return {"bytes": image.size, "ours_mb_per_s": ours, "scp_mb_per_s": scp, "median_ratio": ratio, "target_ratio": 0.8}


def upload_memory(size_mib: int = 256) -> dict:
    """Peak RSS of the uploading process before and after a 256 MiB upload."""
    image, sim = _one_unit(size_mib, "127.43.0.0/24")
    try:
        device = sim.device("aep-01")
        seconds, before, after = _upload_child(device, device["credentials"]["aep"]["password"], image.path)
    finally:
        sim.stop()
    return {"bytes": image.size, "seconds": seconds, "peak_rss_before_kib": before, "peak_rss_after_kib": after,
            "added_mib": (after - before) / 1024, "target_added_mib": 50}


def discovery(runs: int = 3) -> dict:
    """``ansible-inventory`` with the conduits plugin on 16 bench ports (4 with a unit, 12 silent) and a /24 LAN
    holding 8 simulated units: the wall time of the whole command, Python start-up included."""
    from tests.utils.bench import Bench
    from tests.utils.sim import collections_root
    workdir = tempfile.mkdtemp(prefix="bench-discovery-")
    lan = start_simulator(["--aep", "8", "--subnet", "127.44.0.0/24"], workdir=os.path.join(workdir, "lan"))
    walls, found = [], 0
    try:
        with Bench(16, os.path.join(workdir, "bench"), units=4) as bench:
            for port in bench.ports:  # what provisioning_host does, minus NetworkManager
                subprocess.run(["ip", "addr", "add", "192.168.2.200/24", "dev", port.interface], check=True)
                subprocess.run(["ip", "link", "set", port.interface, "up"], check=True)
                with open(f"/proc/sys/net/ipv4/conf/{port.interface}/rp_filter", "w") as handle:
                    handle.write("2\n")
            config = os.path.join(workdir, "bench.conduits.yml")
            with open(config, "w") as handle:
                handle.write(f"plugin: lorawan.conduit.conduits\nbench_ports: ['{bench.glob}']\n"
                             "networks: [127.44.0.0/24]\nname_prefix: bench-\ntimeout: 1.0\n")
            env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root())
            for _run in range(runs):
                begin = time.monotonic()
                done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i",
                                       config, "--list"], capture_output=True, text=True, env=env, check=True)
                walls.append(time.monotonic() - begin)
                found = len(json.loads(done.stdout)["_meta"]["hostvars"])
    finally:
        lan.stop()
    return {"bench_ports": 16, "bench_units": 4, "lan_units": 8, "hosts_found": found, "wall_s": walls,
            "median_s": statistics.median(walls), "target_s": 3.0}


FIGURES = {"fleet_startup": fleet_startup, "sftp_upload": sftp_upload, "upload_vs_scp": upload_vs_scp,
           "upload_memory": upload_memory, "discovery": discovery}


def main(argv: list[str]) -> int:
    """``python -m benchmarks [figure ...]``: measure those (default all); today's file keeps the others."""
    chosen = argv or list(FIGURES)
    unknown = [name for name in chosen if name not in FIGURES]
    if unknown:
        print(f"unknown figure(s): {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
        return 2
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, datetime.date.today().isoformat())
    results = {}
    if os.path.exists(stem + ".json"):
        with open(stem + ".json") as handle:
            results = json.load(handle)
    results.update(date=datetime.datetime.now().isoformat(timespec="seconds"), machine=machine)
    for name in chosen:
        results[name] = FIGURES[name]()
    with open(stem + ".json", "w") as handle:
        json.dump(results, handle, indent=2)
    table = _table(results, machine)
    with open(stem + ".md", "w") as handle:
        handle.write(table)
    print(table)
    return 0


def _table(results: dict, machine: dict) -> str:
    start, upload = results["fleet_startup"], results["sftp_upload"]
    versus, memory = results["upload_vs_scp"], results["upload_memory"]
    rows = (
        "| figure | median | runs | target |\n|---|---|---|---|\n"
        f"| `serve --aep 64` ready (wall, s) | {start['median_s']:.2f} | "
        f"{', '.join(f'{w:.2f}' for w in start['wall_s'])} | < 10 |\n"
        f"| OpenSSH sftp 64 MiB into a device (MB/s) | {upload['median_mb_per_s']:.0f} | "
        f"{', '.join(f'{r:.0f}' for r in upload['mb_per_s'])} | >= 50 |\n"
        f"| mlinux_upgrade upload / scp, 64 MiB (ratio) | {versus['median_ratio']:.2f} | "
        f"{', '.join(f'{o:.0f}/{c:.0f} MB/s' for o, c in zip(versus['ours_mb_per_s'], versus['scp_mb_per_s']))} "
        f"| >= 0.8 |\n"
        f"| peak RSS added by a 256 MiB upload (MiB) | {memory['added_mib']:.1f} | 1 | < 50 |\n")
    if "discovery" in results:
        found = results["discovery"]
        rows += (f"| discovery: 16 bench ports (4 units) + a /24 (8 units), `ansible-inventory --list` (s) | "
                 f"{found['median_s']:.2f} | {', '.join(f'{w:.2f}' for w in found['wall_s'])} | < 3 |\n")
    return rows + f"\nMachine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}.\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
