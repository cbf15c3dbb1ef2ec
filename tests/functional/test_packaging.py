"""The collection as a user gets it: built with ansible-galaxy, installed into a fresh collections path, every
module and plugin documented by ansible-doc, the provision playbook run by its FQCN from there."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from simulator.harness import REPO, write_provisioning

BIN = os.path.dirname(sys.executable)
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the jumphost needs root")  # CI runs as root


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh collections path holding the built collection, and nothing of this checkout."""
    work = tmp_path_factory.mktemp("package")
    built = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(work),
                            REPO], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    tarball = glob.glob(str(work / "lorawan-conduit-*.tar.gz"))
    assert len(tarball) == 1
    collections = work / "collections"
    done = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p",
                           str(collections), tarball[0]], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    root = collections / "ansible_collections" / "lorawan" / "conduit"
    assert (root / "meta" / "execution-environment.yml").exists() and (root / "bindep.txt").exists()
    assert not (root / ".venv").exists() and not (root / ".build").exists()
    return str(collections)


def _env(collections: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    return dict(env, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_HOST_KEY_CHECKING="True")


def test_every_module_and_plugin_is_documented(installed):
    modules = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py")))
    assert len(modules) >= 9
    for kind, names in (("module", modules), ("inventory", ["conduits"])):
        for name in names:
            shown = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", kind, f"lorawan.conduit.{name}"],
                                   capture_output=True, text=True, env=_env(installed), check=False)
            assert shown.returncode == 0 and "EXAMPLES" in shown.stdout, (name, shown.stderr)


def test_the_playbook_runs_by_its_fqcn_from_the_installed_collection(installed, sim_factory, tmp_path):
    sim = sim_factory("--mlinux", "1", "--jumphost")
    provisioning = write_provisioning(sim, str(tmp_path), prefix="ttn-pkg-",
                                      addresses=[device["address"] for device in sim.devices])
    done = subprocess.run([os.path.join(BIN, "ansible-playbook"), "lorawan.conduit.provision", "-i",
                           provisioning + "/", "-l", "new_gateways"], capture_output=True, text=True,
                          env=_env(installed), cwd=str(tmp_path), timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 gateway(s): 1 ready for make apply, 0 failed" in done.stdout
