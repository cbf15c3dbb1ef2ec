"""``make bench``: the figures of the README's performance section, against the simulator and a real sshd jumphost.

Writes ``benchmarks/results/<date>.json`` and ``.md``. Targets: ``serve --aep 64`` ready in under 10 s and
OpenSSH ``sftp`` into a simulated device at 50 MB/s or more (the simulator must never be the bottleneck of a later
figure); the ``mlinux_upgrade`` upload at 0.8x ``scp`` or better, a 256 MB upload adding under 50 MB; discovery in
under 3 s; provisioning 32 units in at most 1.5x the time of one at short device times (5 s reboot, 10 s flash)
and 1.10x at the reference's (150 s, 180 s; 1.3x for 128 units), a re-run at 0.5 controller CPU seconds per gateway or less, peak
memory of the whole run at most 512 MiB at 32 units (1 GiB at 128), at most 15 tasks per gateway. ``ansible_floor``
measures what ansible-core itself costs for as many tasks as a provisioning run had.

Every provisioning figure is measured twice in the same run, beside each other: with this checkout, and with the
collection as it was at ``PREVIOUS_DESIGN`` (``--previous <revision>`` chooses another, ``--previous none`` none),
taken out of git with ``git archive`` and run against the same simulator the same way.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from simulator.images import build_image
from simulator.harness import start_simulator

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The design before each stage stopped failing its own gateways in provision.yml (a fail task per gateway and
# stage, 8 tasks per gateway); the provisioning figures are measured with it too, beside this checkout's.
PREVIOUS_DESIGN = "bcd1a49"


def _one_unit(size_mib: int, subnet: str):
    """An image of ``size_mib`` and a simulator with one commissioned AEP unit with room for it."""
    workdir = tempfile.mkdtemp(prefix="bench-unit-")
    image = build_image(os.path.join(workdir, "image.bin"), size=size_mib * 1024 * 1024)
    sim = start_simulator(["--aep", "1", "--volatile-mib", str(size_mib * 3), "--subnet", subnet,
                           "--device", "aep-01:commissioned=1,ssh_enabled=1"], workdir=workdir)
    return image, sim


def fleet_startup(runs: int = 3) -> dict:
    """``serve --aep 64`` (factory units: mPower only) and ``serve --mlinux 64`` (64 units each running its sshd,
    syslogd and init in namespaces of their own): wall time to the ready line, and the memory the simulator's
    whole process tree holds once ready."""
    figures = {}
    for kind in ("aep", "mlinux"):
        walls, memory = [], []
        for run in range(runs):
            begin = time.monotonic()
            sim = start_simulator([f"--{kind}", "64", "--subnet", f"127.40.{run + (10 if kind == 'mlinux' else 0)}.0/24"],
                                  workdir=tempfile.mkdtemp(prefix="bench-start-"))
            walls.append(time.monotonic() - begin)
            memory.append(_tree_pss_kib(sim.process.pid) / 1024)
            sim.stop()
        figures[kind] = {"devices": 64, "runs": runs, "wall_s": walls, "median_s": statistics.median(walls),
                         "pss_mib": memory, "median_pss_mib": statistics.median(memory)}
    return dict(figures["aep"], target_s=10, target_mib=1024, mlinux=figures["mlinux"])


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
    from simulator.harness import collections_root  # makes the collections path on a fresh clone
    out = subprocess.run([sys.executable, "-c", UPLOAD_CHILD, device["address"], str(device["ssh_port"]), password,
                          image_path, collections_root()], capture_output=True, text=True, check=True,
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
    from simulator.harness import collections_root
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


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _tree_pss_kib(root: int) -> int:
    """The summed PSS of a process and all its descendants."""
    total = 0
    for pid in _process_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total


class _TreeMemory:
    """Samples the summed PSS of a process and all its descendants (the whole controller side of a run).

    PSS, not RSS: Ansible's forks share most of their pages with the parent, and summing RSS would count those
    pages once per fork."""

    def __init__(self, pid: int):
        import threading
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kib = max(self.peak_kib, _tree_pss_kib(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def previous_collections(revision: str) -> str:
    """A collections path holding the collection as it was at ``revision`` (``git archive`` of this repository)."""
    root = tempfile.mkdtemp(prefix="bench-previous-")
    target = os.path.join(root, "ansible_collections", "lorawan", "conduit")
    os.makedirs(target)
    archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", revision], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", target], input=archive.stdout, check=True)
    return root


def _playbook_run(*arguments: str, collections: str | None = None) -> tuple[int, str, dict]:
    """One ``ansible-playbook`` run, measured: exit code, output, and wall time, CPU seconds of the run's whole
    process tree and its peak memory. ``collections``: where lorawan.conduit comes from (default this checkout)."""
    from simulator.harness import collections_root
    # the README's command as a user runs it: Ansible's defaults (5 forks), nothing set behind the scenes
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections or collections_root(), ANSIBLE_HOST_KEY_CHECKING="True")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begin = time.monotonic()
    process = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), *arguments],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    memory = _TreeMemory(process.pid)
    output, _unused = process.communicate()
    wall = time.monotonic() - begin
    peak = memory.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return process.returncode, output, {
        "wall_s": wall, "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "peak_rss_mib": peak / 1024}


def _provision_run(provisioning: str, *extra: str, collections: str | None = None) -> dict:
    """One ``ansible-playbook lorawan.conduit.provision`` run: wall time, controller CPU seconds, peak RSS, and
    the tasks Ansible ran per gateway (its recap: ok + skipped + rescued + ignored, the median gateway)."""
    from simulator.harness import latest_report
    returncode, output, measured = _playbook_run("lorawan.conduit.provision", "-i", provisioning + "/", *extra,
                                                 collections=collections)
    recap = [line for line in output.splitlines() if line.startswith("bench-")]
    # a failed stage is rescued (the run goes on for the others): the report, not the recap, says who failed
    report = latest_report(provisioning)
    if returncode != 0 or any("failed=0" not in line for line in recap) or report["failed"]:
        raise RuntimeError("provision run failed (%s):\n" % report["summary"] + output[-3000:])
    counted = ("ok", "skipped", "rescued", "ignored")
    host_tasks = [sum(int(field.split("=")[1]) for field in line.split() if field.split("=")[0] in counted)
                  for line in recap]
    return dict(measured, gateways=len(recap), unchanged=sum("changed=0" in line for line in recap),
                host_tasks_per_gateway=statistics.median(host_tasks) if host_tasks else 0,
                stage_s=_stage_seconds(report))


def ansible_floor(hosts: int, tasks_per_host: int) -> dict:
    """What ansible-core itself costs for that many host-tasks: ``set_fact`` tasks on local hosts with the
    provision play's strategy and forks (Ansible's defaults), nothing else. The part of a provisioning run no collection can cut
    without running fewer tasks per gateway."""
    workdir = tempfile.mkdtemp(prefix="bench-floor-")
    with open(os.path.join(workdir, "hosts"), "w") as handle:
        handle.write("[floor]\n" + "".join(f"floor-{n:02d} ansible_connection=local\n" for n in range(hosts)))
    tasks = [{"name": f"Task {n}", "ansible.builtin.set_fact": {f"floor_{n}": "{{ inventory_hostname }}"}}
             for n in range(tasks_per_host)]
    with open(os.path.join(workdir, "floor.yml"), "w") as handle:
        json.dump([{"name": "Floor", "hosts": "floor", "gather_facts": False, "tasks": tasks}], handle)  # JSON is YAML
    returncode, output, measured = _playbook_run("-i", os.path.join(workdir, "hosts"),
                                                 os.path.join(workdir, "floor.yml"))
    if returncode != 0:
        raise RuntimeError("floor playbook failed:\n" + output[-3000:])
    return dict(measured, hosts=hosts, tasks_per_host=tasks_per_host,
                cpu_ms_per_host_task=1000 * measured["cpu_s"] / (hosts * tasks_per_host))


def _stage_seconds(report: dict) -> dict:
    """From the run's own report: per stage, the slowest gateway's seconds in the stage's module (where a run's
    time went); a stage whose results carry no seconds (the jumphost's, the acceptance's) is left out."""
    slowest: dict[str, float] = {}
    for entry in report["gateways"].values():
        for stage, outcome in entry["stages"].items():
            if outcome.get("seconds") is not None:
                slowest[stage] = max(slowest.get(stage, 0.0), outcome["seconds"])
    return slowest


def _tunnel_events(sim) -> dict:
    """What the simulated tunnels went through (starts, ups, each error message), summed over the fleet: a slow
    tunnel stage shows here why."""
    counts: dict[str, int] = {}
    for device in sim.devices:
        for event in sim.events(device["name"]):
            if str(event.get("kind", "")).startswith("tunnel"):
                key = event["kind"] + (": " + str(event["error"]) if event.get("error") else "")
                counts[key] = counts.get(key, 0) + 1
    return counts


SCALING_REBOOT_S, SCALING_FLASH_S = 5.0, 10.0
# the reference's device times: the commissioning reboot "normally two to three minutes", the flash "several
# minutes" (not measured; three is taken)
REFERENCE_REBOOT_S, REFERENCE_FLASH_S = 150.0, 180.0


def _fleet_runs(size: int, reboot_s: float, flash_s: float, subnet: str, collections: str | None) -> dict:
    """provision.yml end to end on ``size`` factory units with fixed simulated reboot/flash times, then again on
    the provisioned fleet (the re-run cost)."""
    from simulator.harness import write_provisioning
    waits = ["-e", "aep_commission_reboot_timeout=%d" % (reboot_s * 4 + 60),
             "-e", "mlinux_upgrade_flash_timeout=%d" % (flash_s * 4 + 60)]
    workdir = tempfile.mkdtemp(prefix=f"bench-provision-{size}-")
    sim = start_simulator(["--aep", str(size), "--aep-mtcap", str(size // 3), "--jumphost", "--subnet", subnet,
                           "--reboot-time", str(reboot_s), "--flash-time", str(flash_s)],
                          workdir=os.path.join(workdir, "sim"))
    try:
        provisioning = write_provisioning(sim, workdir, prefix="bench-",
                                          addresses=[device["address"] for device in sim.devices])
        first = _provision_run(provisioning, "-l", "new_gateways", *waits, collections=collections)
        first["tunnel_events"] = _tunnel_events(sim)
        again = _provision_run(provisioning, "-e", "provision_hosts=provisioned", collections=collections)
    finally:
        sim.stop()
    return {"first": first, "rerun": again}


def _summary(runs: dict, reboot_s: float, flash_s: float) -> dict:
    single = runs[min(runs, key=int)]["first"]["wall_s"]
    device_time = reboot_s + flash_s  # the commission reboot and the flash, per unit, in parallel
    return {"runs": runs,
            "ratio": {size: run["first"]["wall_s"] / single for size, run in runs.items()},
            "overhead_s": {size: run["first"]["wall_s"] - device_time for size, run in runs.items()},
            "rerun_cpu_s_per_gateway": {size: run["rerun"]["cpu_s"] / max(run["rerun"]["gateways"], 1)
                                        for size, run in runs.items()}}


def _scaling(sizes: tuple[int, ...], reboot_s: float, flash_s: float, subnet: int, ratio_target: float,
             previous: str | None, ratio_by_size: dict | None = None) -> dict:
    """Each size with this checkout and then with the previous design (``previous``, a revision), each fleet on
    a subnet of its own. ``ratio_by_size``: a size whose wall(N)/wall(1) target is not ``ratio_target``."""
    designs = {"this": None}
    if previous:
        designs["previous"] = previous_collections(previous)
    runs: dict = dict((design, {}) for design in designs)
    for index, size in enumerate(sizes):
        for offset, (design, collections) in enumerate(designs.items()):
            runs[design][str(size)] = _fleet_runs(size, reboot_s, flash_s, f"127.{subnet + offset}.{index}.0/24",
                                                  collections)
    this = _summary(runs["this"], reboot_s, flash_s)
    largest = runs["this"][str(sizes[-1])]["first"]
    this.update(reboot_s=reboot_s, flash_s=flash_s,
                # the target ratio leaves this much wall time for everything but the devices' own
                budget_s=ratio_target * runs["this"][str(sizes[0])]["first"]["wall_s"] - (reboot_s + flash_s),
                floor=ansible_floor(sizes[-1], round(largest["host_tasks_per_gateway"])),
                targets={"ratio": ratio_target, "ratio_by_size": ratio_by_size or {}, "rerun_cpu_s_per_gateway": 0.5,
                         "peak_pss_mib_32": 512, "peak_pss_mib_128": 1024, "tasks_per_gateway": 15})
    if previous:
        this["previous"] = dict(_summary(runs["previous"], reboot_s, flash_s), revision=previous)
    return this


def parallel_scaling(previous: str | None = PREVIOUS_DESIGN) -> dict:
    """Short device times (5 s reboot, 10 s flash): what the tool itself costs shows."""
    return _scaling((1, 8, 32), SCALING_REBOOT_S, SCALING_FLASH_S, 45, ratio_target=1.5, previous=previous)


def parallel_scaling_reference(previous: str | None = PREVIOUS_DESIGN) -> dict:
    """The reference's device times (about 50 minutes for the six fleets): what a bench of 32 and of 128 take."""
    return _scaling((1, 32, 128), REFERENCE_REBOOT_S, REFERENCE_FLASH_S, 47, ratio_target=1.10, previous=previous,
                    ratio_by_size={"128": 1.3})


FIGURES = {"fleet_startup": fleet_startup, "sftp_upload": sftp_upload, "upload_vs_scp": upload_vs_scp,
           "upload_memory": upload_memory, "discovery": discovery, "parallel_scaling": parallel_scaling,
           "parallel_scaling_reference": parallel_scaling_reference}


PROVISIONING_FIGURES = ("parallel_scaling", "parallel_scaling_reference")


def main(argv: list[str]) -> int:
    """``python -m benchmarks [--previous REVISION|none] [figure ...]``: measure those (default all); today's file
    keeps the others."""
    previous = PREVIOUS_DESIGN
    if argv[:1] == ["--previous"] and len(argv) > 1:
        previous = None if argv[1] == "none" else argv[1]
        argv = argv[2:]
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
        results[name] = FIGURES[name](previous) if name in PROVISIONING_FIGURES else FIGURES[name]()
        with open(stem + ".json", "w") as handle:  # after each figure: a long run interrupted keeps what it measured
            json.dump(results, handle, indent=2)
    table = _table(results, machine)
    with open(stem + ".md", "w") as handle:
        handle.write(table)
    print(table)
    return 0


def _table(results: dict, machine: dict) -> str:
    """The figures measured today (a figure not measured today is left out)."""
    rows = "| figure | median | runs | target |\n|---|---|---|---|\n"
    if "fleet_startup" in results:
        start = results["fleet_startup"]
        rows += (f"| `serve --aep 64` ready (wall, s) | {start['median_s']:.2f} | "
                 f"{', '.join(f'{w:.2f}' for w in start['wall_s'])} | < 10 |\n")
        if "median_pss_mib" in start:
            rows += (f"| `serve --aep 64` memory once ready (PSS of the process tree, MiB) | "
                     f"{start['median_pss_mib']:.0f} | {', '.join(f'{m:.0f}' for m in start['pss_mib'])} | < 1024 |\n")
        if "mlinux" in start:
            units = start["mlinux"]
            rows += (f"| `serve --mlinux 64` (64 sshd units) ready (wall, s) / memory (PSS, MiB) | "
                     f"{units['median_s']:.2f} / {units['median_pss_mib']:.0f} | "
                     f"{', '.join(f'{w:.2f} s {m:.0f} MiB' for w, m in zip(units['wall_s'], units['pss_mib']))} | |\n")
    if "sftp_upload" in results:
        upload = results["sftp_upload"]
        rows += (f"| OpenSSH sftp 64 MiB into a device (MB/s) | {upload['median_mb_per_s']:.0f} | "
                 f"{', '.join(f'{r:.0f}' for r in upload['mb_per_s'])} | >= 50 |\n")
    if "upload_vs_scp" in results:
        versus = results["upload_vs_scp"]
        rows += (f"| mlinux_upgrade upload / scp, 64 MiB (ratio) | {versus['median_ratio']:.2f} | "
                 f"{', '.join(f'{o:.0f}/{c:.0f} MB/s' for o, c in zip(versus['ours_mb_per_s'], versus['scp_mb_per_s']))}"
                 " | >= 0.8 |\n")
    if "upload_memory" in results:
        rows += f"| peak RSS added by a 256 MiB upload (MiB) | {results['upload_memory']['added_mib']:.1f} | 1 | < 50 |\n"
    if "discovery" in results:
        found = results["discovery"]
        rows += (f"| discovery: 16 bench ports (4 units) + a /24 (8 units), `ansible-inventory --list` (s) | "
                 f"{found['median_s']:.2f} | {', '.join(f'{w:.2f}' for w in found['wall_s'])} | < 3 |\n")
    if rows.count("\n") == 2:  # no figure but the provisioning ones
        rows = ""
    provisioning = [results[figure] for figure in PROVISIONING_FIGURES if figure in results]
    if provisioning:
        previous = next((scaling["previous"]["revision"] for scaling in provisioning if "previous" in scaling), None)
        rows += ("\n" if rows else "") + (
            "Provisioning, the README's command with Ansible's defaults: this checkout beside the previous design "
            "(%s), same run.\n\n| figure | this design | previous design | target |\n|---|---|---|---|\n"
            % (previous or "not measured"))
        for scaling in provisioning:
            rows += _provisioning_rows(scaling)
    return rows + f"\nMachine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}.\n"


def _provisioning_cells(figure: dict, size: str) -> list[str]:
    """One design's cells for the fleet of ``size``, in the order of :func:`_provisioning_rows`' labels."""
    first, again = figure["runs"][size]["first"], figure["runs"][size]["rerun"]
    return [f"{first['wall_s']:.1f} s, {figure['ratio'][size]:.2f}", f"{first['cpu_s']:.1f}",
            f"{first['peak_rss_mib']:.0f}", f"{first['host_tasks_per_gateway']:.0f}",
            ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in first["stage_s"].items()),
            f"{figure['rerun_cpu_s_per_gateway'][size]:.2f} ({again['wall_s']:.1f} s; "
            f"{again['unchanged'] == again['gateways']})"]


def _provisioning_rows(scaling: dict) -> str:
    """One figure's rows: each size, this design's figure beside the previous design's."""
    previous = scaling.get("previous") or {"runs": {}}
    targets = scaling.get("targets", {})
    times = "reboot %.0f s + flash %.0f s" % (scaling["reboot_s"], scaling["flash_s"])
    rows = ""
    for size in scaling["runs"]:
        ratio = (targets.get("ratio_by_size") or {}).get(size, targets.get("ratio", ""))
        labels = [(f"provision {size} factory units ({times}): wall s, wall(N)/wall(1)",
                   f"<= {ratio}" if size != "1" else ""),
                  (f"provision {size}: controller CPU s (the whole process tree)", ""),
                  (f"provision {size}: peak controller memory (PSS of all processes, MiB)",
                   {"32": "<= 512", "128": "<= 1024"}.get(size, "")),
                  (f"provision {size}: tasks Ansible ran per gateway (recap: ok + skipped + rescued + ignored)",
                   f"<= {targets.get('tasks_per_gateway', '')}"),
                  (f"provision {size}: slowest gateway per stage (s, from the run's report)", ""),
                  (f"re-run over {size} provisioned: controller CPU s per gateway (wall s; all changed=0)",
                   f"<= {targets.get('rerun_cpu_s_per_gateway', '')}")]
        this = _provisioning_cells(scaling, size)
        before = _provisioning_cells(previous, size) if size in previous["runs"] else [""] * len(labels)
        for (label, target), mine, theirs in zip(labels, this, before):
            rows += f"| {label} | {mine} | {theirs} | {target} |\n"
    if "floor" in scaling:
        floor = scaling["floor"]
        rows += (f"| ansible-core alone, {floor['hosts']} local hosts x {floor['tasks_per_host']} `set_fact` tasks "
                 f"({times}): wall s, CPU s, ms per host-task; wall left for all but the devices at ratio "
                 f"{targets.get('ratio', '')} | {floor['wall_s']:.1f}, {floor['cpu_s']:.1f}, "
                 f"{floor['cpu_ms_per_host_task']:.0f}; {scaling['budget_s']:.1f} | | |\n")
    return rows


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
