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
    workdir = tempfile.mkdtemp(prefix="bench-sftp-")
    image = build_image(os.path.join(workdir, "image.bin"), size=size_mib * 1024 * 1024)
    sim = start_simulator(["--aep", "1", "--volatile-mib", str(size_mib * 3), "--subnet", "127.41.0.0/24",
                           "--device", "aep-01:commissioned=1,ssh_enabled=1"], workdir=workdir)
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


def main() -> int:
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine,
               "fleet_startup": fleet_startup(), "sftp_upload": sftp_upload()}
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, datetime.date.today().isoformat())
    with open(stem + ".json", "w") as handle:
        json.dump(results, handle, indent=2)
    start, upload = results["fleet_startup"], results["sftp_upload"]
    table = (
        "| figure | median | runs | target |\n|---|---|---|---|\n"
        f"| `serve --aep 64` ready (wall, s) | {start['median_s']:.2f} | "
        f"{', '.join(f'{w:.2f}' for w in start['wall_s'])} | < 10 |\n"
        f"| OpenSSH sftp 64 MiB into a device (MB/s) | {upload['median_mb_per_s']:.0f} | "
        f"{', '.join(f'{r:.0f}' for r in upload['mb_per_s'])} | >= 50 |\n"
        f"\nMachine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}.\n")
    with open(stem + ".md", "w") as handle:
        handle.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
