"""The bad-input suite: one table of kinds of bad input, each given to a module the way a playbook gives it (an
``ansible`` task through the collection's action plugins, the jumphost modules on the real sshd jumphost with
become), against a simulated fleet. Each row names the module, the gateway the error must name, the stage it must
report (where the module reports one) and the words that say what to do; after each, nothing has changed on the
units (their files, and no mPower request that changes state), on the jumphost (accounts, sshd configuration,
homes) or in the operator's files (the organisation's inventory, the ledger), and no password is in the output."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import OUTCOME_KEYS

from simulator.harness import fill_org, start_simulator, write_inventory
from simulator.harness import REPO
from simulator.images import build_image
from tests.functional.test_jumphost_register import run_module

SKIPPED_ON_UNITS = ("tmp", "run", "proc", "dev", "sys", os.path.join("var", "log"), os.path.join("var", "volatile"))


@dataclass
class Fleet:
    sim: Any
    inventory: str
    work: str
    ledger: str
    org: str
    images: str
    mlinux: dict
    aep: dict
    values: dict = field(default_factory=dict)


def _tree(root, skip=()):
    """Every file under ``root`` with its mode and content digest (links by target): what "unchanged" compares."""
    seen = {}
    for folder, folders, files in os.walk(root):
        relative = os.path.relpath(folder, root)
        folders[:] = sorted(name for name in folders if os.path.normpath(os.path.join(relative, name)) not in skip)
        for name in sorted(files + [name for name in folders if os.path.islink(os.path.join(folder, name))]):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if os.path.islink(path):
                seen[os.path.join(relative, name)] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    seen[os.path.join(relative, name)] = (info.st_mode, hashlib.sha256(handle.read()).hexdigest())
    return seen


def _snapshot(fleet):
    state = fleet.sim.jumphost["state_dir"]
    changing = [event for event in fleet.sim.events(fleet.aep["name"])
                if event["kind"] == "http" and event.get("method") != "GET"]
    return {"units": {device["name"]: _tree(device["unit_root"], SKIPPED_ON_UNITS)
                      for device in (fleet.mlinux, fleet.aep) if device.get("unit_root")},
            "aep requests": len(changing),
            "jumphost": {name: _tree(os.path.join(state, name)) for name in (os.path.join("etc", "ssh"), "home")},
            "jumphost accounts": [open(os.path.join(state, "etc", name)).read() for name in ("passwd", "group")],
            "operator": _tree(fleet.org), "ledger": _established(fleet.ledger)}


def _established(ledger):
    """Each ledger record without the stages' outcomes: a failure is filed as the stage's outcome (by design), and
    nothing else of the record may change."""
    records = {}
    for name in sorted(os.listdir(ledger)) if os.path.isdir(ledger) else []:
        with open(os.path.join(ledger, name)) as handle:
            record = yaml.safe_load(handle)
        for stage, entry in list((record.get("stages") or {}).items()):
            details = {key: value for key, value in entry.items() if key not in OUTCOME_KEYS}
            if details:
                record["stages"][stage] = details
            else:
                del record["stages"][stage]
        records[name] = record
    return records


@pytest.fixture(scope="module", name="fleet")
def _fleet(tmp_path_factory):
    from tests.conftest import _next_subnet
    work = str(tmp_path_factory.mktemp("bad-input"))
    sim = start_simulator(["--subnet", _next_subnet(), "--aep", "1", "--mlinux", "1", "--jumphost"],
                          workdir=os.path.join(work, "sim"))
    inventory = write_inventory(sim, os.path.join(work, "inventory.yml"))
    org = os.path.join(work, "org")
    shutil.copytree(os.path.join(REPO, "inventory_template", "org"), org)
    fill_org(sim, org)
    images = os.path.join(work, "images")
    os.makedirs(images)
    build_image(os.path.join(images, "good.bin"), model="mtcdt", size=256 * 1024)
    for defect in ("wrong-model", "bad-md5", "truncated", "not-tar", "missing-model", "model-symlink",
                   "md5-hardlink"):
        build_image(os.path.join(images, defect + ".bin"), model="mtcdt", size=256 * 1024, defect=defect)
    with open(os.path.join(images, "SHA256SUMS"), "w") as handle:
        handle.write("%s  other.bin\n" % ("1" * 64))
    mlinux = [device for device in sim.devices if device["firmware"] == "mlinux"][0]
    aep = [device for device in sim.devices if device["firmware"] == "aep"][0]
    fleet = Fleet(sim, inventory, work, os.path.join(work, "ledger"), org, images, mlinux, aep)
    identified = run_module(inventory, "gateway_facts", dict(_mlinux_login(fleet), ledger_dir=fleet.ledger),
                            host="localhost", become=False)
    assert identified["rc"] == 0, identified["printed"][-2000:]
    # a configuration sshd rejects, for the register stage to leave alone
    sim.jumphost_run("cp /etc/ssh/sshd_config /etc/ssh/sshd_config.broken && "
                     "echo 'NoSuchKeyword yes' >> /etc/ssh/sshd_config.broken")
    yield fleet
    sim.stop()


def _mlinux_login(fleet, **overrides):
    device = fleet.mlinux
    return dict({"name": device["name"], "address": device["address"], "port": device["ssh_port"],
                 "password": device["credentials"]["mlinux"]["password"]}, **overrides)


def _tunnel(fleet, **overrides):
    args = dict(_mlinux_login(fleet), ledger_dir=fleet.ledger, authorized_keys=[fleet.sim.jumphost["host_key_rsa"]],
                remote_host=fleet.sim.jumphost["address"], remote_user="gw", remote_port=26900, keepalive_port=46900,
                time_sync=False)
    args.update(overrides)
    return args


def _upgrade(fleet, image, **overrides):
    args = dict(_mlinux_login(fleet), image=os.path.join(fleet.images, image), product_type="mtcdt",
                expected_version="6.0.0")
    args.update(overrides)
    return args


def _aep(fleet, **overrides):
    device = fleet.aep
    return dict({"name": device["name"], "address": device["address"], "https_port": device["https_port"],
                 "password": "Factory#Admin1", "validate_certs": False}, **overrides)


def _register(fleet, **overrides):
    return dict({"gateway": "ttn-bad-gw", "host_key": fleet.mlinux["host_key"], "organisation": "ttn-bad",
                 "tunnel_port_min": 26900, "keepalive_port_base": 46900}, **overrides)


def _hand_over(fleet, **overrides):
    return dict({"name": "ttn-bad-00-08-00-00-00-01", "inventory_dir": os.path.join(fleet.org, "inventory"),
                 "tunnel_port": 26901, "keepalive_port": 46902, "jumphost_user": "ttn-bad-00-08-00-00-00-01",
                 "tunnel_remote_host": fleet.sim.jumphost["address"],
                 "tunnel_remote_ssh_port": fleet.sim.jumphost["port"]}, **overrides)


def _host_vars(fleet, name, text):
    with open(os.path.join(fleet.org, "inventory", "host_vars", name), "w") as handle:
        handle.write(text)


def _broken_hosts(fleet):
    with open(os.path.join(fleet.org, "inventory", "hosts"), "a") as handle:
        handle.write("[broken\n")


@dataclass
class Case:
    kind: str
    module: str
    args: Callable[[Fleet], dict]
    words: str
    gateway: str = ""  # the name the message must hold; "" for errors that concern no gateway
    stage: str = ""
    host: str = "localhost"
    setup: Callable[[Fleet], None] | None = None
    changes: str = ""  # the one part of the snapshot the refusal may change, and says it did


MLINUX, AEP = "{mlinux}", "{aep}"
LONG = "ttn-bad-" + "a" * 30
CASES = [
    # identify: the mLinux unit
    Case("wrong mLinux password", "gateway_facts", lambda f: _mlinux_login(f, password="Wrong#Pass1"),
         "refused", MLINUX, "identify"),
    Case("password with a line break", "gateway_facts", lambda f: _mlinux_login(f, password="Pass\nword"),
         "holds a line break", MLINUX),
    Case("password with a carriage return", "gateway_facts", lambda f: _mlinux_login(f, password="Pass\r"),
         "holds a line break", MLINUX),
    Case("nothing answers at the address", "gateway_facts",
         lambda f: _mlinux_login(f, address=f.mlinux["address"].rsplit(".", 1)[0] + ".251", connect_timeout=2),
         "", MLINUX, "identify"),
    Case("another unit's host key pinned", "gateway_facts",
         lambda f: _mlinux_login(f, host_key=f.sim.jumphost["host_key_rsa"]), "host key", MLINUX, "identify"),
    Case("another product expected", "gateway_facts", lambda f: _mlinux_login(f, expected_product_type="mtcap"),
         "mtcap", MLINUX, "identify"),
    Case("an option that does not exist", "gateway_facts", lambda f: _mlinux_login(f, colour="red"),
         "Unsupported parameters"),
    Case("no name", "gateway_facts", lambda f: {k: v for k, v in _mlinux_login(f).items() if k != "name"},
         "missing required arguments: name"),
    Case("port that is no number", "gateway_facts", lambda f: _mlinux_login(f, port="twenty-two"), "port"),
    # tunnel: the identified mLinux unit
    Case("no key for root", "gateway_tunnel", lambda f: _tunnel(f, authorized_keys=[]),
         "authorized_keys is empty", MLINUX, "tunnel"),
    Case("root key that is no key", "gateway_tunnel", lambda f: _tunnel(f, authorized_keys=["ssh-rsa AAAAnotakey"]),
         "not a public key", MLINUX, "tunnel"),
    Case("root key that is a private key", "gateway_tunnel",
         lambda f: _tunnel(f, authorized_keys=["-----BEGIN OPENSSH PRIVATE KEY-----"]), "not a public key", MLINUX,
         "tunnel"),
    Case("jumphost name with a space", "gateway_tunnel", lambda f: _tunnel(f, remote_host="jump host"),
         "cannot go into /etc/default/ssh_tunnel", MLINUX, "tunnel"),
    Case("jumphost account with a command in it", "gateway_tunnel", lambda f: _tunnel(f, remote_user="gw$(reboot)"),
         "cannot go into /etc/default/ssh_tunnel", MLINUX, "tunnel"),
    Case("jumphost account with a quote", "gateway_tunnel", lambda f: _tunnel(f, remote_user="gw'x"),
         "cannot go into /etc/default/ssh_tunnel", MLINUX, "tunnel"),
    Case("init script that does not exist", "gateway_tunnel",
         lambda f: _tunnel(f, init_script_source="/nonexistent/ssh_tunnel.initd"), "cannot be read", MLINUX, "tunnel"),
    Case("init script that is a program", "gateway_tunnel", lambda f: _tunnel(f, init_script_source="/bin/busybox"),
         "is not a shell script", MLINUX, "tunnel"),
    Case("jumphost host key that is no key", "gateway_tunnel", lambda f: _tunnel(f, jumphost_host_keys=["garbage"]),
         "jumphost_host_keys holds", MLINUX, "tunnel"),
    Case("unit the ledger has not identified", "gateway_tunnel",
         lambda f: _tunnel(f, ledger_dir=os.path.join(f.work, "empty-ledger")), "no identification of it", MLINUX,
         "tunnel"),
    Case("tunnel password with a line break", "gateway_tunnel", lambda f: _tunnel(f, password="x\ny"),
         "holds a line break", MLINUX),
    Case("wrong password at the tunnel", "gateway_tunnel", lambda f: _tunnel(f, password="Wrong#Pass1"), "refused",
         MLINUX, "tunnel"),
    # upgrade: the image, checked before anything reaches the unit
    Case("image that does not exist", "mlinux_upgrade", lambda f: _upgrade(f, "missing.bin"), "no such file",
         MLINUX, "check image"),
    Case("image for another model", "mlinux_upgrade", lambda f: _upgrade(f, "wrong-model.bin"),
         "image is for model mtcap", MLINUX, "check image"),
    Case("image with a bad md5", "mlinux_upgrade", lambda f: _upgrade(f, "bad-md5.bin"), "the file is corrupt",
         MLINUX, "check image"),
    Case("truncated image", "mlinux_upgrade", lambda f: _upgrade(f, "truncated.bin"), "truncated", MLINUX,
         "check image"),
    Case("image that is no tar", "mlinux_upgrade", lambda f: _upgrade(f, "not-tar.bin"), "not a tar archive",
         MLINUX, "check image"),
    Case("image without a model", "mlinux_upgrade", lambda f: _upgrade(f, "missing-model.bin"),
         "no 'model' member", MLINUX, "check image"),
    Case("image whose model is a link", "mlinux_upgrade", lambda f: _upgrade(f, "model-symlink.bin"),
         "its member model is a link to /etc/hostname", MLINUX, "check image"),
    Case("image whose checksum is a link", "mlinux_upgrade", lambda f: _upgrade(f, "md5-hardlink.bin"),
         "is a link to uImage.bin.md5", MLINUX, "check image"),
    Case("image that is a folder", "mlinux_upgrade", lambda f: dict(_upgrade(f, ""), image=f.images),
         "not a regular file", MLINUX, "check image"),
    Case("sha256 that does not match", "mlinux_upgrade", lambda f: _upgrade(f, "good.bin", image_checksum="0" * 64),
         "a corrupt or different download", MLINUX, "check image"),
    Case("checksum YAML made a number", "mlinux_upgrade", lambda f: _upgrade(f, "good.bin", image_checksum="0"),
         "quote it", MLINUX, "check image"),
    Case("checksum too short", "mlinux_upgrade", lambda f: _upgrade(f, "good.bin", image_checksum="deadbeef"),
         "neither a sha256 hex digest", MLINUX, "check image"),
    Case("checksum file without the image", "mlinux_upgrade",
         lambda f: _upgrade(f, "good.bin", image_checksum=os.path.join(f.images, "SHA256SUMS")),
         "has no sha256 line for good.bin", MLINUX, "check image"),
    Case("upgrade password with a line break", "mlinux_upgrade", lambda f: _upgrade(f, "good.bin", password="a\nb"),
         "holds a line break", MLINUX),
    # commission: the factory AEP unit
    Case("admin password with a line break", "aep_commission", lambda f: _aep(f, password="Factory\n"),
         "holds a line break", AEP),
    Case("nothing answers mPower there", "aep_commission",
         lambda f: _aep(f, address=f.aep["address"].rsplit(".", 1)[0] + ".252", request_timeout=2, boot_timeout=3),
         "did not answer", AEP, "connect"),
    Case("TLS fingerprint of another unit", "aep_commission", lambda f: _aep(f, tls_fingerprint="00" * 32),
         "not the pinned one", AEP, "connect"),
    Case("another product expected at commissioning", "aep_commission",
         lambda f: _aep(f, expected_product_type="mtcap"), "its admin user mtadm was created", AEP, "check product",
         changes="aep requests"),
    # register: the jumphost, with become
    Case("organisation in capitals", "jumphost_register", lambda f: _register(f, organisation="TTN-Bad"),
         "use lower-case letters", "", "register", "jumphost"),
    Case("organisation with a space", "jumphost_register", lambda f: _register(f, organisation="ttn bad"),
         "use lower-case letters", "", "register", "jumphost"),
    Case("gateway name in capitals", "jumphost_register", lambda f: _register(f, gateway="TTN-BAD-GW"),
         "lower-case letters", "TTN-BAD-GW", "register", "jumphost"),
    Case("gateway name that is a path", "jumphost_register", lambda f: _register(f, gateway="../../etc"),
         "lower-case letters", "../../etc", "register", "jumphost"),
    Case("gateway name too long for an account", "jumphost_register", lambda f: _register(f, gateway=LONG),
         "at most 32", LONG, "register", "jumphost"),
    Case("host key that is no key", "jumphost_register", lambda f: _register(f, host_key="ssh-rsa AAAAbroken"),
         "not an OpenSSH public key", "ttn-bad-gw", "register", "jumphost"),
    Case("host key with two keys in it", "jumphost_register",
         lambda f: _register(f, host_key=f.mlinux["host_key"] + "\n" + f.sim.jumphost["host_key_rsa"]),
         "holds a line break (two keys", "ttn-bad-gw", "register", "jumphost"),
    Case("port range upside down", "jumphost_register",
         lambda f: _register(f, tunnel_port_min=30000, tunnel_port_max=20000), "must satisfy", "", "register",
         "jumphost"),
    Case("privileged tunnel ports", "jumphost_register", lambda f: _register(f, tunnel_port_min=80),
         "must satisfy 1024", "", "register", "jumphost"),
    Case("keepalive ports over the tunnel ports", "jumphost_register",
         lambda f: _register(f, keepalive_port_base=26910), "overlap", "", "register", "jumphost"),
    Case("keepalive base past the last port", "jumphost_register", lambda f: _register(f, keepalive_port_base=65535),
         "leaves no room", "", "register", "jumphost"),
    Case("a gateway twice in one batch", "jumphost_register",
         lambda f: dict({k: v for k, v in _register(f).items() if k not in ("gateway", "host_key")},
                        gateways=[{"gateway": "ttn-bad-gw", "host_key": f.mlinux["host_key"]}] * 2),
         "more than once", "ttn-bad-gw", "register", "jumphost"),
    Case("an account mode that does not exist", "jumphost_register", lambda f: _register(f, account_mode="both"),
         "account_mode", "", "", "jumphost"),
    Case("sshd configuration that does not exist", "jumphost_register",
         lambda f: _register(f, sshd_config="/etc/ssh/nonexistent"), "does not exist", "", "register", "jumphost"),
    Case("sshd configuration sshd rejects", "jumphost_register",
         lambda f: _register(f, sshd_config="/etc/ssh/sshd_config.broken"), "nothing was changed", "", "register",
         "jumphost"),
    Case("lock in a folder anyone may write", "jumphost_register",
         lambda f: _register(f, lock_file="/tmp/lorawan-bad.lock"), "not a folder only root may change", "",
         "register", "jumphost"),
    # inventory: the organisation's ttn-multitech-cm inventory
    Case("hostname that is no gateway ID", "ttn_inventory", lambda f: _hand_over(f, hostname="Bad_Gateway"),
         "Bad_Gateway", "ttn-bad-00-08-00-00-00-01", "inventory"),
    Case("altitude that is no number", "ttn_inventory", lambda f: _hand_over(f, altitude="high"), "altitude",
         "ttn-bad-00-08-00-00-00-01", "inventory"),
    Case("hosts file that does not parse", "ttn_inventory", _hand_over, "hosts", "ttn-bad-00-08-00-00-00-01",
         "inventory", setup=_broken_hosts),
    Case("host_vars that are not YAML", "ttn_inventory", _hand_over, "ttn-bad-00-08-00-00-00-01.yml",
         "ttn-bad-00-08-00-00-00-01", "inventory",
         setup=lambda f: _host_vars(f, "ttn-bad-00-08-00-00-00-01.yml", "hostname: [unclosed\n")),
    Case("tunnel port another gateway has", "ttn_inventory", _hand_over, "26901", "ttn-bad-00-08-00-00-00-01",
         "inventory", setup=lambda f: _host_vars(f, "ttn-other.yml", "ssh_tunnel_remote_port: 26901\n")),
    Case("an mLinux version that would re-flash", "ttn_inventory",
         lambda f: _hand_over(f, installed_mlinux_version="5.3.31", mlinux_version="6.0.0"), "6.0.0",
         "ttn-bad-00-08-00-00-00-01", "inventory"),
    Case("an interface type that does not exist", "ttn_inventory", lambda f: _hand_over(f, eth0_type="wifi"),
         "eth0_type"),
    Case("organisation inventory that does not exist", "ttn_inventory",
         lambda f: _hand_over(f, inventory_dir="/nonexistent/inventory"), "/nonexistent/inventory",
         "ttn-bad-00-08-00-00-00-01", "inventory"),
    # the state of units
    Case("a unit twice", "unit_state_info",
         lambda f: {"units": [{"name": "a", "address": "127.0.0.1"}, {"name": "a", "address": "127.0.0.2"}]},
         "more than once"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_bad_input_gets_a_clear_error_and_changes_nothing(fleet, case):
    kept = os.path.join(fleet.work, "org-before")
    shutil.copytree(fleet.org, kept, symlinks=True)
    try:
        if case.setup:
            case.setup(fleet)
        _check(fleet, case)
    finally:  # the next case starts from the organisation as it was
        shutil.rmtree(fleet.org)
        os.rename(kept, fleet.org)


def _check(fleet, case):
    before = _snapshot(fleet)
    result = run_module(fleet.inventory, case.module, case.args(fleet), host=case.host,
                        become=case.host == "jumphost", timeout=180)
    gateway = case.gateway.format(mlinux=fleet.mlinux["name"], aep=fleet.aep["name"])
    message = result.get("msg", "")
    assert result["rc"] != 0, result["printed"][-3000:]
    assert case.words in message and gateway in message, message or result["printed"][-3000:]
    if case.stage:
        assert result.get("stage") == case.stage, result
    assert "failed unexpectedly" not in message and "Traceback" not in result["printed"]
    after = _snapshot(fleet)
    if case.changes:
        assert after.pop(case.changes) != before.pop(case.changes)
    assert after == before
    for device in (fleet.mlinux, fleet.aep):
        for credential in device["credentials"].values():
            if credential.get("password"):
                assert credential["password"] not in result["printed"]
    assert fleet.sim.jumphost["admin_password"] not in result["printed"]
