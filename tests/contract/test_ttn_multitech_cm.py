"""The hand-over, tried by its consumer: ttn-multitech-cm's own commands (its Makefile, its ansible.cfg, its
playbook) against the organisation inventory that ``lorawan.conduit.provision`` wrote for a simulated fleet, through
the simulated jumphost. The checkout is ``$TTN_MULTITECH_CM`` (default: the project's snapshot); nothing of it is
copied into this repository, it is copied to a scratch folder for the run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import _next_subnet
from simulator.unit import CM_ENV, CM_DEFAULT, ttn_multitech_cm_checkout
from simulator.harness import REPO, provision, start_simulator, write_provisioning

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the simulator needs root")  # CI runs as root

BIN = os.path.dirname(sys.executable)
OUTPUT = os.path.join(REPO, "tests", "output", "contract")


def _cm_collections() -> str:
    done = subprocess.run([os.path.join(REPO, "tests", "utils", "ttn-cm-collections")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, f"could not get ttn-multitech-cm's collections: {done.stderr[-2000:]}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def handed_over(tmp_path_factory):
    """Three factory units and one already on mLinux, provisioned with the README's command; then a scratch copy
    of the ttn-multitech-cm checkout and the environment its Makefile runs in."""
    checkout = ttn_multitech_cm_checkout()
    if checkout is None:
        pytest.fail(f"no ttn-multitech-cm checkout: set {CM_ENV} to one (IthacaThings/ttn-multitech-cm); "
                    f"none at {CM_DEFAULT}")
    workdir = str(tmp_path_factory.mktemp("contract"))
    sim = start_simulator(["--subnet", _next_subnet(), "--aep", "3", "--aep-mtcap", "1", "--mlinux", "1",
                           "--jumphost", "--reboot-time", "1", "--flash-time", "2"], workdir=workdir)
    try:
        provisioning = write_provisioning(sim, workdir, prefix="ttn-ct-",
                                          addresses=[device["address"] for device in sim.devices])
        done = provision(provisioning)
        assert done.returncode == 0, done.stdout[-4000:]
        cm = os.path.join(workdir, "ttn-multitech-cm")
        shutil.copytree(checkout, cm, symlinks=True)
        org = os.path.join(workdir, "org")
        os.makedirs(OUTPUT, exist_ok=True)
        cm_env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_cm_collections(),
                      ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(workdir, "cm-cp"),
                      PATH=BIN + os.pathsep + os.environ["PATH"])
        cm_env.pop("ANSIBLE_CONFIG", None)
        gateways = sorted(name for name in os.listdir(os.path.join(org, "inventory", "host_vars"))
                          if name.endswith(".yml"))
        yield {"sim": sim, "org": org, "cm": cm, "env": cm_env,
               "gateways": [name[:-len(".yml")] for name in gateways]}
    finally:
        sim.stop()


def _make(over, *arguments, timeout=600):
    done = subprocess.run(["make", "-C", over["cm"], "TTN_ANSIBLE_IN_DOCKER=1", f"TTN_ORG={over['org']}", *arguments],
                          capture_output=True, text=True, env=over["env"], timeout=timeout, check=False)
    with open(os.path.join(OUTPUT, "make-" + "-".join(re.sub(r"\W+", "_", a) for a in arguments)[:80] + ".log"),
              "w") as log:
        log.write(f"$ make {' '.join(arguments)}\n{done.stdout}{done.stderr}\nexit status {done.returncode}\n")
    return done


def test_every_gateway_is_in_the_inventory_ttn_multitech_cm_reads(handed_over):
    over = handed_over
    assert len(over["gateways"]) == 4
    done = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", os.path.join(over["org"], "inventory"),
                           "--list"], cwd=over["cm"], capture_output=True, text=True, env=over["env"], timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    conduits = set()
    for group in listed["conduits"]["children"]:
        conduits.update(listed.get(group, {}).get("hosts", []))
    assert conduits == set(over["gateways"])
    for name in over["gateways"]:
        host = listed["_meta"]["hostvars"][name]
        assert isinstance(host["ssh_tunnel_remote_port"], int) and host["ansible_host"] == "localhost"
        assert host["hostname"] == name


def test_its_syntax_check_passes(handed_over):
    done = _make(handed_over, "syntax-check")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_make_ping_reaches_every_gateway_through_the_jumphost(handed_over):
    over = handed_over
    done = _make(over, "TARGET=conduits", "ping")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pongs = {line.split()[0] for line in done.stdout.splitlines() if "SUCCESS" in line and '"pong"' in line}
    assert pongs == set(over["gateways"]), done.stdout
    # and each tunnel ends at the unit that gateway was provisioned from (named after the address it was found at)
    asked = subprocess.run([os.path.join(BIN, "ansible"), "-i", os.path.join(over["org"], "inventory"), "-o",
                            "-m", "ansible.builtin.command", "-a", "mts-io-sysfs show mac-eth", "conduits"],
                           cwd=over["cm"], capture_output=True, text=True, timeout=300, check=False,
                           env=dict(over["env"], ANSIBLE_CACHE_PLUGIN_CONNECTION=os.path.join(over["org"], "catalog")))
    assert asked.returncode == 0, asked.stdout[-3000:] + asked.stderr[-3000:]
    macs = {line.split()[0]: line.rsplit(None, 1)[-1].lower() for line in asked.stdout.splitlines() if "rc=0" in line}
    assert sorted(macs) == over["gateways"], asked.stdout
    found_at = {"ttn-ct-" + device["address"].replace(".", "-"): device["mac"] for device in over["sim"].devices}
    assert macs == found_at


def test_apply_in_check_mode_connects_to_every_gateway(handed_over):
    """ttn-multitech-cm's `make test` (apply in check mode). How far it gets, and why it stops, is recorded in
    tests/output/contract; here: every gateway is reached and its facts gathered (the connection contract)."""
    over = handed_over
    done = _make(over, "TARGET=conduits", "test", timeout=900)
    recap = {line.split()[0]: line for line in done.stdout.splitlines()
             if re.match(r"^\S+\s+: ok=\d+", line)}
    assert set(recap) == set(over["gateways"]), done.stdout[-3000:] + done.stderr[-3000:]
    assert all("unreachable=0" in line for line in recap.values()), recap


def _role_tasks_in_check_mode(over, tasks_from: str, role_vars: dict | None = None) -> dict:
    """ttn-multitech-cm's own ``tasks_from`` of its conduit role in check mode through the organisation's inventory:
    ``{task name: {host: result}}``."""
    playbook = os.path.join(os.path.dirname(over["org"]), f"{tasks_from}-check.yml")
    with open(playbook, "w") as handle:
        json.dump([{"hosts": "conduits", "gather_facts": False, "tasks": [{"ansible.builtin.include_role": {
            "name": "conduit", "tasks_from": tasks_from}, "vars": role_vars or {}}]}], handle)
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(over["org"], "inventory"),
                           "--check", "--diff", playbook], cwd=over["cm"], capture_output=True, text=True,
                          timeout=600, check=False,
                          env=dict(over["env"], ANSIBLE_ROLES_PATH=os.path.join(over["cm"], "roles"),
                                   ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
                                   ANSIBLE_CACHE_PLUGIN_CONNECTION=os.path.join(over["org"], "catalog")))
    with open(os.path.join(OUTPUT, f"{tasks_from}-check.json"), "w") as log:
        log.write(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report, _end = json.JSONDecoder().raw_decode(done.stdout)  # warnings may follow the report
    return {task["task"]["name"]: task["hosts"] for play in report["plays"] for task in play["tasks"]}


def test_its_tunnel_tasks_find_nothing_to_change_on_a_freshly_provisioned_gateway(handed_over):
    """ttn-multitech-cm's own ssh_tunnel tasks (its role, its template, its defaults) in check mode through the
    organisation's inventory: the tunnel settings the unit has are the ones make apply would write, so apply does
    not rewrite them (nor restart the tunnel for them)."""
    over = handed_over
    tasks = _role_tasks_in_check_mode(over, "ssh_tunnel.yml")
    for name in ("conduit : ssh_tunnel /var/config/ssh_tunnel.default", "conduit : ssh_tunnel /var/config/init.d/ssh_tunnel",
                 "conduit : ssh_tunnel Link /etc/default/ssh_tunnel to /var/config/ssh_tunnel.default",
                 "conduit : ssh_tunnel Link /etc/init.d/ssh_tunnel to /var/config/init.d/ssh_tunnel"):
        results = tasks[name]
        assert sorted(results) == over["gateways"], name
        assert not any(result.get("changed") for result in results.values()), (name, results)
    assert "conduit : ansible.builtin.reboot" not in tasks, "its restart handler would reboot the gateway"


def test_its_root_key_tasks_find_root_keys_as_apply_would_install_them(handed_over):
    """ttn-multitech-cm's user_dirs tasks for root in check mode: the persistent key folder and root's
    authorized_keys (installed exclusively from the organisation's authorized_keys) are already what apply
    writes, so apply neither replaces root's keys nor locks anyone out."""
    over = handed_over
    tasks = _role_tasks_in_check_mode(over, "user_dirs.yml", {"target_user": "root"})
    keys = [name for name in tasks if "authorized keys" in name]
    assert len(keys) == 1, sorted(tasks)
    for name in keys + [name for name in tasks if "Create" in name and "dirs" in name]:
        results = tasks[name]
        assert sorted(results) == over["gateways"], name
        assert not any(result.get("changed") for result in results.values()), (name, results)
