"""Shared fixtures: simulators on their own loopback subnets, SSH helpers."""

from __future__ import annotations

import itertools
import os
import shlex
import socket
from dataclasses import dataclass

import paramiko
import pytest

from simulator.harness import Simulator, collections_root, start_simulator

_SUBNETS = itertools.count()


def _next_subnet() -> str:
    """A /24 inside 127.0.0.0/8 that no other test (or xdist worker) uses."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    worker_number = int(worker[2:]) if worker[2:].isdigit() else 0
    return f"127.{100 + worker_number}.{next(_SUBNETS) % 250 + 1}.0/24"


@pytest.fixture
def sim_factory(tmp_path_factory):
    """Start simulators with ``sim_factory(args)``; all are stopped after the test."""
    started: list[Simulator] = []

    def start(*args: str) -> Simulator:
        workdir = str(tmp_path_factory.mktemp("sim"))
        sim = start_simulator(["--subnet", _next_subnet(), *args], workdir=workdir)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@dataclass
class Result:
    status: int | None
    stdout: str
    stderr: str


def ssh_client(address: str, port: int, username: str, password: str | None = None,
               key_filename: str | None = None, sock=None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # simulator devices: keys checked elsewhere
    client.connect(address, port=port, username=username, password=password, key_filename=key_filename,
                   allow_agent=False, look_for_keys=False, timeout=10, banner_timeout=10, auth_timeout=10,
                   sock=sock)
    return client


def ssh_run(client: paramiko.SSHClient, command: str, stdin: bytes | None = None, timeout: float = 30) -> Result:
    chan = client.get_transport().open_session(timeout=timeout)
    chan.settimeout(timeout)
    chan.exec_command(command)
    if stdin is not None:
        chan.sendall(stdin)
    chan.shutdown_write()
    out, err = bytearray(), bytearray()
    while True:
        data = chan.recv(65536)
        if not data:
            break
        out.extend(data)
    while True:
        data = chan.recv_stderr(65536)
        if not data:
            break
        err.extend(data)
    status = chan.recv_exit_status()  # -1: the channel closed without an exit status
    return Result(None if status == -1 else status, out.decode(errors="replace"), err.decode(errors="replace"))


def as_root(device: dict, command: str) -> str:
    """``command`` run as root on a simulated mLinux unit, reached on its LAN address as mtadm (sudo, the password
    on stdin); its output. It must succeed."""
    password = device["credentials"]["mlinux"]["password"]
    client = ssh_client(device["address"], device["ssh_port"], "mtadm", password)
    try:
        result = ssh_run(client, "sudo -S -p '' sh -c %s" % shlex.quote(command), stdin=f"{password}\n".encode())
        assert result.status == 0, result.stderr
        return result.stdout
    finally:
        client.close()


def port_open(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0


def _collection_on_path() -> None:
    """Make ``ansible_collections.lorawan.conduit`` importable from this checkout."""
    import sys
    root = collections_root()
    if root not in sys.path:
        sys.path.insert(0, root)


_collection_on_path()
