"""The host_vars line editor and the hosts file: what an operator wrote survives, what breaks is named."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import (
    HostsFile,
    HostVarsEditor,
    backup_copy,
)

OPERATOR = """\
---
# roof of the co-op
hostname: gw-a
ssh_tunnel_remote_port: 20001   # moved in May
ssh_tunnel_keepalive_base_port:
  40002
description: "It's #1: the roof"

custom: {a: 1}
...
"""


def test_only_owned_keys_change_and_their_comments_stay():
    text, changed = HostVarsEditor("hv.yml", OPERATOR).apply(
        {"ssh_tunnel_remote_port": 20101, "ssh_tunnel_keepalive_base_port": 40202, "hostname": "gw-a",
         "mlinux_version": "5.3"}, {"description": "placeholder"})
    assert changed == ["ssh_tunnel_remote_port", "ssh_tunnel_keepalive_base_port", "mlinux_version"]
    assert text.splitlines() == [
        "---", "# roof of the co-op", "hostname: gw-a", "ssh_tunnel_remote_port: 20101   # moved in May",
        "ssh_tunnel_keepalive_base_port: 40202", "description: \"It's #1: the roof\"", "", "custom: {a: 1}",
        "mlinux_version: '5.3'", "..."]
    assert yaml.safe_load(text)["mlinux_version"] == "5.3"


@pytest.mark.parametrize("description", ['Café "Zur Post" #2: roof', "a: b # c", "'quoted'", "ü ö ß", "- dash",
                                         "{curly}", "@at", "yes"])
def test_any_description_comes_back_as_written(description):
    text, _changed = HostVarsEditor("hv.yml", "").apply({"hostname": "gw-a"}, {"description": description})
    assert yaml.safe_load(text) == {"hostname": "gw-a", "description": description}


def test_a_broken_file_is_named_with_its_line():
    with pytest.raises(StageError) as caught:
        HostVarsEditor("/org/inventory/host_vars/gw.yml", "a: 1\nb: [2\n")
    assert caught.value.message.startswith("/org/inventory/host_vars/gw.yml line 3: ")


HOSTS = """\
# gateways
[test]
gw-old   # the roof one

[production]
gw-prod ansible_port=20001

[conduits:children]
production
test
"""


def test_a_host_goes_after_the_last_host_of_its_group_and_nothing_else_moves():
    hosts = HostsFile("hosts", HOSTS)
    assert hosts.groups_of("gw-old") == ["test"] and hosts.groups_of("gw-prod") == ["production"]
    after = hosts.with_host("gw-new", "test")
    assert after == HOSTS.replace("gw-old   # the roof one\n", "gw-old   # the roof one\ngw-new\n")


def test_a_missing_group_is_made_a_child_of_conduits():
    after = HostsFile("hosts", HOSTS).with_host("gw-new", "staging")
    assert after == HOSTS.replace("production\ntest\n", "production\ntest\nstaging\n") + "\n[staging]\ngw-new\n"
    assert HostsFile("hosts", after).groups_of("gw-new") == ["staging"]


@pytest.mark.parametrize("line,reason", [
    ("[staging", "a group header must look like"),
    ("[x:kids]", "unknown section kind :kids"),
    ("gw-x ansible_port", "only key=value variables may follow"),
])
def test_a_broken_hosts_file_is_named_with_its_line(line, reason):
    with pytest.raises(StageError) as caught:
        HostsFile("/org/inventory/hosts", HOSTS + "[more]\n" + line + "\n")
    assert caught.value.message.startswith("/org/inventory/hosts line 12: ") and reason in caught.value.message


def test_missing_org_wide_variables_are_named_with_their_file(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = tmp_path / "org" / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "conduits.yml").write_text("ansible_user: root\nregion: US\n")
    (inventory / "hosts").write_text("[test]\n")
    params = {"name": "gw-one", "inventory_dir": str(inventory), "group": "test", "hostname": None,
              "description": None, "latitude": None, "longitude": None, "altitude": None, "eth0_type": "dhcp",
              "tunnel_port": 20001, "keepalive_port": 40002, "local_port": 22, "ansible_user": "root",
              "jumphost_user": "gw-one", "installed_mlinux_version": "5.3.31", "mlinux_version": None,
              "identity": None, "backup": False}
    result = InventoryWriter(params).run()
    assert "ttn_user" in result["missing_org_vars"] and "region" not in result["missing_org_vars"]
    assert "ssh_tunnel_gateway_user_on_jumphost" not in result["missing_org_vars"]  # written for the host
    assert any(str(inventory / "group_vars" / "conduits.yml") in warning and "ttn_user" in warning
               for warning in result["warnings"])
    assert any("catalog does not exist" in warning for warning in result["warnings"])


def test_a_backup_keeps_the_operators_owner_mode_and_content(tmp_path):
    original = tmp_path / "gw.yml"
    original.write_text("hostname: gw  # mine\n")
    os.chmod(original, 0o640)
    os.chown(original, 4242, 4343)  # the operator's, while the controller runs as root
    backup = backup_copy(str(original))
    seen = os.stat(backup)
    assert backup.startswith(str(original) + ".%d." % os.getpid()) and backup.endswith("~")
    assert (seen.st_uid, seen.st_gid, seen.st_mode & 0o777) == (4242, 4343, 0o640)
    assert open(backup).read() == "hostname: gw  # mine\n"
