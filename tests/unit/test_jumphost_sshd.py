"""The gateways' Match block in the jumphost's sshd configuration, checked by the real sshd (``sshd -t``,
``sshd -T -C``) on files in a temporary folder. The running sshd that re-reads it is
tests/functional/test_jumphost_confinement.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._jumphost_accounts import JumphostSystem
from ansible_collections.lorawan.conduit.plugins.module_utils._jumphost_sshd import (
    SshdConfinement,
    confinement_block,
    with_block,
)

OPERATORS = """\
# the operator's comment
Port 22
HostKey {key}
AllowTcpForwarding yes

Match User backup
    ForceCommand /usr/bin/true
"""


def _run(argv):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(name="sshd_config")
def _sshd_config(tmp_path):
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd -t insists on its privilege separation folder
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_key")], check=True)
    path = tmp_path / "sshd_config"
    path.write_text(OPERATORS.format(key=tmp_path / "host_key"))
    os.chmod(path, 0o640)
    return path


def test_the_block_goes_before_the_first_match_and_is_restored_where_it_stands():
    text = "Port 22\nMatch User a\n    X11Forwarding yes\n"
    once = with_block(text, "acme-gateways")
    lines = once.splitlines()
    assert lines[0] == "Port 22" and lines[1:1 + len(confinement_block("acme-gateways"))] == \
        confinement_block("acme-gateways")
    assert once.endswith("Match User a\n    X11Forwarding yes\n")
    assert with_block(once, "acme-gateways") == once
    edited = once.replace("    PermitTTY no\n", "    PermitTTY yes\n")
    assert with_block(edited, "acme-gateways") == once
    two = with_block(once, "other-gateways")  # a second organisation on the same jumphost has its own block
    assert with_block(two, "acme-gateways") == two and two.count("Match Group ") == 2
    assert with_block("Port 22", "acme-gateways").startswith("Port 22\n# BEGIN lorawan.conduit")


def test_the_real_sshd_accepts_the_block_and_confines_the_group(sshd_config):
    """Group root and account root stand in for the gateways' group and one of its accounts: sshd resolves the
    membership through the system, as on the jumphost."""
    before = sshd_config.read_text()
    system = JumphostSystem(_run)
    changed, diff = SshdConfinement(system, str(sshd_config), "root", check_mode=True).ensure()
    assert changed and diff["before"] == before and sshd_config.read_text() == before
    changed, diff = SshdConfinement(system, str(sshd_config), "root").ensure()
    after = sshd_config.read_text()
    assert changed and diff["after"] == after and after.startswith(before.split("\nMatch User")[0])
    assert after.endswith("Match User backup\n    ForceCommand /usr/bin/true\n")
    assert oct(os.stat(sshd_config).st_mode & 0o7777) == "0o640"
    assert [name for name in os.listdir(sshd_config.parent) if name.startswith(".")] == []
    assert any("no running sshd was found" in warning for warning in system.warnings)
    SshdConfinement(system, str(sshd_config), "root").verify("root")
    status, out, _err = _run(["/usr/sbin/sshd", "-T", "-f", str(sshd_config), "-C",
                              "user=nobody,host=x,addr=127.0.0.1"])
    assert status == 0 and "allowstreamlocalforwarding yes" in out  # others keep what the operator set
    assert SshdConfinement(system, str(sshd_config), "root").ensure() == (False, None)


def test_a_configuration_sshd_rejects_is_left_as_it_is(sshd_config):
    broken = sshd_config.read_text() + "NoSuchKeyword yes\n"
    sshd_config.write_text(broken)
    with pytest.raises(StageError) as caught:
        SshdConfinement(JumphostSystem(_run), str(sshd_config), "root").ensure()
    assert "sshd rejects" in caught.value.message and "NoSuchKeyword" in caught.value.message
    assert "nothing was changed" in caught.value.message
    assert sshd_config.read_text() == broken
    assert sorted(os.listdir(sshd_config.parent)) == ["host_key", "host_key.pub", "sshd_config"]


def test_an_earlier_match_that_loosens_the_group_is_named(sshd_config, tmp_path):
    """An Include before the block whose Match applies to everyone wins over ours (sshd takes the first value):
    sshd -T -C shows it and the registration stops, naming the setting."""
    (tmp_path / "loose.conf").write_text("Match all\n    AllowStreamLocalForwarding yes\n")
    sshd_config.write_text("Include %s\n" % (tmp_path / "loose.conf") + sshd_config.read_text())
    confinement = SshdConfinement(JumphostSystem(_run), str(sshd_config), "root")
    confinement.ensure()
    with pytest.raises(StageError) as caught:
        confinement.verify("root")
    assert "does not confine the gateway account root" in caught.value.message
    assert "AllowStreamLocalForwarding yes" in caught.value.message


def test_a_linked_configuration_is_replaced_where_it_lies(sshd_config, tmp_path):
    link = tmp_path / "linked_config"
    link.symlink_to(sshd_config)
    SshdConfinement(JumphostSystem(_run), str(link), "root").ensure()
    assert link.is_symlink() and "Match Group root" in sshd_config.read_text()


def test_a_missing_configuration_is_a_clear_error(tmp_path):
    with pytest.raises(StageError) as caught:
        SshdConfinement(JumphostSystem(_run), str(tmp_path / "none"), "root").ensure()
    assert "does not exist" in caught.value.message and "jumphost_register_sshd_config" in caught.value.message
