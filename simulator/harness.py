"""Start the simulator as its own process and talk to it (tests, demo, benchmarks).

Readiness is the simulator's own word: ``serve`` prints its ready line only
after the manifest is written and every device answers, so nothing here
guesses with sleeps. :func:`wait_until` polls a condition with a deadline for
the things that happen later (a reboot finishing, a tunnel coming up).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def collections_root() -> str:
    """A collections path holding this checkout as ``lorawan.conduit`` (a symlink; Ansible accepts one)."""
    root = os.path.join(REPO, ".build", "collections")
    link = os.path.join(root, "ansible_collections", "lorawan", "conduit")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    try:
        os.symlink(REPO, link)
    except FileExistsError:
        pass  # made earlier, or by another xdist worker
    return root


class SimulatorError(RuntimeError):
    pass


class CannotBeReached(SimulatorError):
    """Raised by a :func:`wait_until` condition that knows it will never hold (the process it waits on ended)."""


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except CannotBeReached:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


class Simulator:
    """A running ``python -m simulator serve`` process."""

    def __init__(self, process: subprocess.Popen, manifest_path: str, workdir: str):
        self.process = process
        self.manifest_path = manifest_path
        self.workdir = workdir
        with open(manifest_path) as handle:
            self.manifest: dict[str, Any] = yaml.safe_load(handle)
        self.control_url = self.manifest["simulator"]["control_url"]

    # --- manifest ---------------------------------------------------------------

    def device(self, name: str) -> dict[str, Any]:
        for entry in self.manifest["devices"]:
            if entry["name"] == name:
                return entry
        raise KeyError(name)

    @property
    def devices(self) -> list[dict[str, Any]]:
        return self.manifest["devices"]

    @property
    def jumphost(self) -> dict[str, Any]:
        if not self.manifest.get("jumphost"):
            raise SimulatorError("this simulator was started without --jumphost")
        return self.manifest["jumphost"]

    # --- control API --------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.control_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec - loopback control API
            return json.loads(response.read())

    def live(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/devices/{name}")

    def events(self, name: str, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/devices/{name}/events?since={since}")["events"]

    def set_knobs(self, name: str, **knobs: Any) -> dict[str, Any]:
        return self._call("POST", f"/devices/{name}/knobs", knobs)

    def clear_fault(self, name: str) -> None:
        self._call("POST", f"/devices/{name}/clear-fault", {})

    def power_cycle(self, name: str) -> None:
        self._call("POST", f"/devices/{name}/power-cycle", {})

    def restart_jumphost(self, down: float) -> None:
        """Every session of the jumphost ends, nothing answers there for ``down`` seconds, then it is back as it
        was; returns once it is."""
        self._call("POST", "/jumphost/restart", {"down": down}, timeout=down + 40)

    def wait_state(self, name: str, state: str, timeout: float = 30,
                   run: subprocess.Popen | None = None) -> dict[str, Any]:
        """Wait for ``name`` to be in ``state``; with ``run`` (from :func:`start_provision`), fail at once when that
        run ends first, with the end of its output."""
        def reached() -> dict[str, Any] | None:
            if run is not None and run.poll() is not None:
                with open(run.log_path, errors="replace") as handle:  # type: ignore[attr-defined]
                    raise CannotBeReached(f"the run ended (status {run.returncode}) before {name} was in state "
                                          f"{state}; it printed: {handle.read()[-3000:]}")
            live = self.live(name)
            return live if live["state"] == state else None
        return wait_until(reached, timeout, f"{name} in state {state}")

    # --- jumphost -----------------------------------------------------------------------

    def jumphost_run(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command as root inside the jumphost's mount and network namespaces (test inspection)."""
        result = subprocess.run(["nsenter", "-t", str(self.jumphost["pid"]), "-m", "-n", "--", "/bin/sh", "-c", command],
                                capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise SimulatorError(f"jumphost command failed ({result.returncode}): {command}\n{result.stderr}")
        return result

    def in_jumphost_network(self, make: Callable[[], Any]) -> Any:
        """``make()`` run in a thread inside the jumphost's network namespace: sockets it makes are the jumphost's
        (its ``127.0.0.1``, where its reverse tunnels listen)."""
        from simulator.jumphost import _enter_network_namespace  # pylint: disable=import-outside-toplevel
        made: dict[str, Any] = {}

        def run() -> None:
            try:
                _enter_network_namespace(f"/proc/{self.jumphost['pid']}/ns/net")
                made["value"] = make()
            except OSError as exc:
                made["error"] = exc
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        if "error" in made:
            raise made["error"]
        return made["value"]

    def jumphost_connection(self, port: int, timeout: float = 5) -> socket.socket:
        """A TCP connection to ``127.0.0.1:port`` as the jumphost itself would open it."""
        return self.in_jumphost_network(lambda: socket.create_connection(("127.0.0.1", port), timeout=timeout))

    # --- lifecycle -----------------------------------------------------------------------

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_simulator(args: list[str], workdir: str | None = None, timeout: float = 60,
                    python: str = sys.executable, detach: bool = False, namespace: str | None = None) -> Simulator:
    """Start ``serve`` with ``args`` (without --manifest); return once it says it is ready.

    ``namespace``: run it inside that network namespace (``ip netns exec``), as a unit behind a bench port.

    ``detach`` starts it in its own session with its output in a file, so that
    it outlives this process (Molecule's create and destroy are two processes).
    """
    workdir = workdir or tempfile.mkdtemp(prefix="sim-test-")
    os.makedirs(workdir, exist_ok=True)
    manifest = os.path.join(workdir, "manifest.yml")
    log_path = os.path.join(workdir, "simulator.log")
    log = open(log_path, "wb")  # pylint: disable=consider-using-with
    argv = [python, "-m", "simulator", "serve", "--manifest", manifest,
            "--state-dir", os.path.join(workdir, "state"), *args]
    if namespace:
        argv = ["ip", "netns", "exec", namespace, *argv]
    if detach:
        ready_path = os.path.join(workdir, "simulator.out")
        with open(ready_path, "wb") as out:
            process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=log,  # pylint: disable=consider-using-with
                                       stdin=subprocess.DEVNULL, start_new_session=True)

        def ready() -> bool:
            if process.poll() is not None:
                raise CannotBeReached(f"simulator exited with {process.returncode}; log: {log_path}")
            with open(ready_path, "rb") as handle:
                return b"ready" in handle.read()
        wait_until(ready, timeout, "simulator ready")
        return Simulator(process, manifest, workdir)
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    selector = selectors.DefaultSelector()
    assert process.stdout is not None
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffered = b""
    while b"\n" not in buffered:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            process.kill()
            raise SimulatorError(f"simulator not ready within {timeout:.0f} s; log: {log_path}")
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            process.wait()
            with open(log_path, errors="replace") as handle:
                raise SimulatorError(f"simulator exited with {process.returncode}: {handle.read()[-2000:]}")
        buffered += chunk
    selector.close()
    return Simulator(process, manifest, workdir)


@contextmanager
def running_simulator(args: list[str], **kwargs: Any) -> Iterator[Simulator]:
    sim = start_simulator(args, **kwargs)
    try:
        yield sim
    finally:
        sim.stop()


def write_inventory(sim: Simulator, path: str) -> str:
    """An Ansible inventory for the running fleet: groups aep, mlinux and jumphosts (host jumphost).

    Every device host key is pinned in a known_hosts file of its own. SSH
    control sockets live in this fleet's own folder: Ansible keys them on
    host:port:user, so a master left from an earlier fleet at the same address
    would otherwise carry this run's commands to a jumphost that is gone.
    """
    control_dir = os.path.join(sim.workdir, "cp")
    os.makedirs(control_dir, mode=0o700, exist_ok=True)
    known_hosts = os.path.join(sim.workdir, "devices_known_hosts")
    with open(known_hosts, "w") as handle:
        for device in sim.devices:
            if device["host_key"]:
                host = device["address"] if device["ssh_port"] == 22 else f"[{device['address']}]:{device['ssh_port']}"
                handle.write(f"{host} {' '.join(device['host_key'].split()[:2])}\n")
    groups: dict[str, Any] = {"aep": {"hosts": {}}, "mlinux": {"hosts": {}}}
    for device in sim.devices:
        identity_keys = ("name", "address", "https_port", "ssh_port", "mac", "serial", "lora_eui", "product_id",
                         "product_type", "hw_version")
        facts = {f"sim_{key}": device[key] for key in identity_keys}
        # what the conduits inventory plugin will provide for real units
        facts.update(conduit_address=device["address"], conduit_https_port=device["https_port"],
                     conduit_ssh_port=device["ssh_port"], sim_host_key=device["host_key"],
                     sim_mlinux_password=device["credentials"]["mlinux"]["password"])
        if device["credentials"]["aep"]["password"]:
            facts["sim_aep_password"] = device["credentials"]["aep"]["password"]
        if device["firmware"] == "aep":
            facts.update(ansible_connection="local", ansible_python_interpreter="{{ ansible_playbook_python }}")
        else:
            creds = device["credentials"]["mlinux"]
            facts.update(
                ansible_host=device["address"], ansible_port=device["ssh_port"], ansible_user=creds["username"],
                ansible_password=creds["password"], ansible_become_password=creds["password"],
                ansible_ssh_common_args=(f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
                                         "-o PubkeyAuthentication=no"),
                ansible_control_path_dir=control_dir)
        groups[device["firmware"]]["hosts"][device["name"]] = facts
    inventory: dict[str, Any] = {"all": {"vars": {"sim_manifest": sim.manifest_path, "sim_workdir": sim.workdir,
                                                  "sim_control_url": sim.control_url},
                                         "children": groups}}
    if sim.manifest.get("jumphost"):
        jump = sim.jumphost
        groups["jumphosts"] = {"hosts": {"jumphost": {
            "ansible_host": jump["address"], "ansible_port": jump["port"], "ansible_user": jump["admin_user"],
            "ansible_ssh_private_key_file": jump["admin_key"],
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": (f"-o UserKnownHostsFile={jump['known_hosts']} -o StrictHostKeyChecking=yes "
                                        "-o IdentitiesOnly=yes"),
            "ansible_control_path_dir": control_dir,
        }}}
        if jump["sudo_needs_password"]:
            groups["jumphosts"]["hosts"]["jumphost"]["ansible_become_password"] = jump["admin_password"]
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=False)
    return path


def write_provisioning(sim: Simulator, workdir: str, prefix: str, addresses: list[str] | None = None,
                       networks: list[str] | None = None) -> str:
    """inventory_template/provisioning (and an org from inventory_template/org) filled in for the running fleet:
    discovery over ``networks`` and ``addresses``, the jumphost, passwords from the simulator."""
    from simulator.images import build_image
    from simulator.unit import ttn_multitech_cm_checkout
    repo = REPO
    provisioning = os.path.join(workdir, "provisioning")
    shutil.copytree(os.path.join(repo, "inventory_template", "provisioning"), provisioning)
    shutil.copytree(os.path.join(repo, "inventory_template", "org"), os.path.join(workdir, "org"))
    fill_org(sim, os.path.join(workdir, "org"))
    images = os.path.join(workdir, "images")
    os.makedirs(images, exist_ok=True)
    for model in ("mtcdt", "mtcap"):
        build_image(os.path.join(images, f"ttni-base-image-{model}-upgrade.bin"), model=model, size=4 * 1024 * 1024)
    full = write_inventory(sim, os.path.join(workdir, "sim-inventory.yml"))
    with open(full) as handle:
        jumphosts = yaml.safe_load(handle)["all"]["children"]["jumphosts"]
    with open(os.path.join(provisioning, "jumphost.yml"), "w") as handle:
        yaml.safe_dump({"jumphosts": jumphosts}, handle, sort_keys=False)
    with open(os.path.join(provisioning, "bench.conduits.yml"), "w") as handle:
        yaml.safe_dump({"plugin": "lorawan.conduit.conduits", "networks": networks or [],
                        "addresses": addresses or [], "ledger_dir": "../ledger", "name_prefix": prefix}, handle)
    jump = sim.jumphost
    device = sim.devices[0]
    with open(jump["admin_key"] + ".pub") as handle:
        provisioning_key = handle.read().strip()
    settings = {
        "conduit_org_dir": os.path.join(workdir, "org"), "conduit_ledger_dir": "{{ inventory_dir | dirname }}/ledger",
        "conduit_report_dir": "{{ inventory_dir | dirname }}/reports",
        "conduit_aep_password": "{{ vault_aep_password }}", "conduit_mlinux_password": "{{ vault_mlinux_password }}",
        "conduit_authorized_keys": [provisioning_key], "jumphost_register_organisation": prefix.rstrip("-"),
        # the checkout the units' own device scripts come from: the gateways get its ssh_tunnel init script
        "conduit_ttn_multitech_cm_dir": ttn_multitech_cm_checkout() or "",
        # the keepalive ports this simulator holds: two fleets' tunnels on one machine never share one
        "jumphost_register_keepalive_port_base": jump["keepalive_port_base"],
        "mlinux_upgrade_image": os.path.join(images, "ttni-base-image-{product_type}-upgrade.bin"),
        "mlinux_upgrade_image_checksum": "", "mlinux_upgrade_expected_version": "5.3.31",
        "mlinux_upgrade_flash_timeout": 120, "aep_commission_reboot_timeout": 60,
        # how long a run waits for a unit that does not answer (the simulated units boot in seconds)
        "provision_boot_timeout": 10,
        "ansible_control_path_dir": os.path.join(workdir, "cp")}
    with open(os.path.join(provisioning, "group_vars", "all", "main.yml"), "w") as handle:
        handle.write("---\n# inventory_template/provisioning, filled in for the simulated fleet\n")
        yaml.safe_dump(settings, handle, sort_keys=False)
    # where the README's ansible-vault step puts them; not encrypted here (a test encrypts it as the README does)
    with open(os.path.join(provisioning, "group_vars", "all", "vault.yml"), "w") as handle:
        yaml.safe_dump({"vault_aep_password": "Demo#Pass+1",
                        "vault_mlinux_password": device["credentials"]["mlinux"]["password"]}, handle)
    return provisioning


def ledger_folder(provisioning: str) -> str:
    """Where the template keeps the ledger: beside the inventory folder."""
    return os.path.join(os.path.dirname(provisioning), "ledger")


def report_folder(provisioning: str) -> str:
    return os.path.join(os.path.dirname(provisioning), "reports")


def fill_org(sim: Simulator, org: str) -> None:
    """What an operator fills in inventory_template/org for their jumphost (the simulated one here): its address
    and port in group_vars, its Host entry in ssh_config (strict host key checking; the pipeline pins its key),
    and the key root on the gateways will accept (the provisioning key, which is the jumphost admin's here).
    Comments and order stay."""
    jump = sim.jumphost
    with open(jump["admin_key"] + ".pub") as handle:
        operator_key = handle.read().strip()
    conduits = os.path.join(org, "inventory", "group_vars", "conduits.yml")
    with open(conduits) as handle:
        text = handle.read()
    for placeholder, value in ((r"ssh_tunnel_remote_host: .*", f"ssh_tunnel_remote_host: {jump['address']}"),
                               (r"ssh_tunnel_ssh_port: .*", f"ssh_tunnel_ssh_port: {jump['port']}"),
                               (r'  - "ssh-ed25519 AAAA-replace-with-your-operators-keys[^\n]*"',
                                f'  - "{operator_key}"')):
        text, count = re.subn(placeholder, lambda _match, line=value: line, text, count=1)
        assert count == 1, f"inventory_template/org has no {placeholder!r} any more"
    with open(conduits, "w") as handle:
        handle.write(text)
    with open(os.path.join(org, "ssh_config"), "w") as handle:
        handle.write("# The simulated jumphost, filled in as an operator would.\n"
                     f"Host jumphost\n    HostName {jump['address']}\n    Port {jump['port']}\n"
                     f"    User {jump['admin_user']}\n    IdentitiesOnly yes\n    IdentityFile {jump['admin_key']}\n"
                     "    StrictHostKeyChecking yes\n"
                     f"Host *\n    IdentitiesOnly yes\n    IdentityFile {jump['admin_key']}\n")


def _provision_command(provisioning: str, args: tuple[str, ...]) -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "lorawan.conduit.provision",
            "-i", provisioning + "/", *(args or ("-l", "new_gateways"))]


def _runs_log(provisioning: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(provisioning)), "runs.log")


def _provision_env(env: dict[str, str] | None) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_root(), ANSIBLE_HOST_KEY_CHECKING="True",
                **(env or {}))


def provision(provisioning: str, *args: str, env: dict[str, str] | None = None,
              timeout: float = 900) -> subprocess.CompletedProcess:
    """The README's command, ``ansible-playbook lorawan.conduit.provision -i <provisioning>/`` and ``args`` (``-l
    new_gateways`` when none), with this checkout's collection and strict host key checking; the output is also
    appended to ``runs.log`` beside the provisioning folder (inside it, Ansible would read it as inventory)."""
    done = subprocess.run(_provision_command(provisioning, args), capture_output=True, text=True, timeout=timeout,
                          check=False, env=_provision_env(env))
    with open(_runs_log(provisioning), "a") as log:
        log.write(done.stdout + done.stderr)
    return done


def start_provision(provisioning: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """:func:`provision` started and not waited for; its output goes to the same ``runs.log``."""
    log = open(_runs_log(provisioning), "ab")  # pylint: disable=consider-using-with
    try:
        run = subprocess.Popen(_provision_command(provisioning, args), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=_provision_env(env))
        run.log_path = log.name  # type: ignore[attr-defined]
        return run
    finally:
        log.close()


def processes_of(needle: str) -> list[int]:
    """The PIDs whose command line holds ``needle`` (an ansible-playbook run's workers carry its command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                words = handle.read().split(b"\0")
        except OSError:
            continue
        if any(needle.encode() in word for word in words) and not _zombie(int(entry)):  # a zombie does nothing
            found.append(int(entry))
    return found


def latest_report(provisioning: str) -> dict[str, Any]:
    """The JSON report of the last provision run over ``provisioning``."""
    reports = sorted(name for name in os.listdir(report_folder(provisioning)) if name.endswith(".json"))
    with open(os.path.join(report_folder(provisioning), reports[-1])) as handle:
        return json.load(handle)


def main(argv: list[str] | None = None) -> int:
    """``start``/``stop`` a detached simulator in a work folder, or ``run`` a command beside one."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m simulator.harness")
    parser.add_argument("action", choices=("start", "stop", "run"))
    parser.add_argument("--workdir", required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER,
                        help="serve options, then -- and the command for run")
    args = parser.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if args.action == "stop":
        manifest_path = os.path.join(args.workdir, "manifest.yml")
        if not os.path.exists(manifest_path):
            return 0
        with open(manifest_path) as handle:
            pid = yaml.safe_load(handle)["simulator"]["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return 0
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 30, "simulator stopped")
        return 0
    serve_args, command = rest, []
    if "--" in rest:
        index = rest.index("--")
        serve_args, command = rest[:index], rest[index + 1:]
    sim = start_simulator(serve_args, workdir=args.workdir, detach=args.action == "start")
    inventory = write_inventory(sim, os.path.join(args.workdir, "inventory.yml"))
    if args.action == "start":
        print(f"simulator ready: inventory {inventory}")
        return 0
    env = dict(os.environ, SIM_WORKDIR=args.workdir, SIM_INVENTORY=inventory, SIM_MANIFEST=sim.manifest_path)
    try:
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        sim.stop()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


if __name__ == "__main__":
    sys.exit(main())
