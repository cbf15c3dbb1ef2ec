"""Start the simulator as its own process and talk to it (tests, demo, benchmarks).

Readiness is the simulator's own word: ``serve`` prints its ready line only
after the manifest is written and every device answers, so nothing here
guesses with sleeps. :func:`wait_until` polls a condition with a deadline for
the things that happen later (a reboot finishing, a tunnel coming up).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SimulatorError(RuntimeError):
    pass


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # pylint: disable=broad-except
            last_error = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


class Simulator:
    """A running ``python -m tests.simulator serve`` process."""

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

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.control_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # nosec - loopback control API
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

    def wait_state(self, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
        return wait_until(lambda: (lambda d: d if d["state"] == state else None)(self.live(name)), timeout,
                          f"{name} in state {state}")

    # --- jumphost -----------------------------------------------------------------------

    def jumphost_run(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command as root inside the jumphost's mount namespace (test inspection)."""
        result = subprocess.run(["nsenter", "-t", str(self.jumphost["pid"]), "-m", "--", "/bin/sh", "-c", command],
                                capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise SimulatorError(f"jumphost command failed ({result.returncode}): {command}\n{result.stderr}")
        return result

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
                    python: str = sys.executable) -> Simulator:
    """Start ``serve`` with ``args`` (without --manifest); return once it says it is ready."""
    workdir = workdir or tempfile.mkdtemp(prefix="sim-test-")
    manifest = os.path.join(workdir, "manifest.yml")
    log_path = os.path.join(workdir, "simulator.log")
    log = open(log_path, "wb")  # pylint: disable=consider-using-with
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        [python, "-m", "tests.simulator", "serve", "--manifest", manifest,
         "--state-dir", os.path.join(workdir, "state"), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
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
