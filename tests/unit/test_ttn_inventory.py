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
    (inventory / "hosts").write_text(MINIMAL_HOSTS)
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


@pytest.mark.parametrize("identity, version", [
    ({"lora_eui": "{{ lookup('pipe', 'id') }}"}, "5.3.31"),
    ({"serial": "1234\n5678"}, "5.3.31"),
    ({"mac": "00:08:00:4a:26:f1"}, "5.3.31 # {{ x }}"),
])
def test_a_value_from_the_unit_out_of_its_form_is_refused_and_nothing_written(tmp_path, identity, version):
    """The ledger is a file a hand can edit: what ttn_inventory takes from it is checked again."""
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = tmp_path / "org" / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts").write_text(MINIMAL_HOSTS)
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    params = {"name": "gw-one", "inventory_dir": str(inventory), "group": "test", "hostname": None,
              "description": None, "latitude": None, "longitude": None, "altitude": None, "eth0_type": "dhcp",
              "tunnel_port": 20001, "keepalive_port": 40002, "local_port": 22, "ansible_user": "root",
              "jumphost_user": "gw-one", "installed_mlinux_version": version, "mlinux_version": None,
              "identity": identity, "backup": False}
    with pytest.raises(StageError) as caught:
        InventoryWriter(params).run()
    assert "refused, nothing written" in str(caught.value) and "{{" not in str(caught.value)
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before
    assert (inventory / "hosts").read_text() in ("[test]\n", MINIMAL_HOSTS)


MINIMAL_HOSTS = "[test]\n\n[conduits:children]\ntest\n"


def _org(tmp_path, conduits):
    inventory = tmp_path / "org" / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "conduits.yml").write_text(conduits)
    (inventory / "hosts").write_text(MINIMAL_HOSTS)
    return inventory


def _tunnel_params(inventory, **extra):
    return dict({"name": "gw-one", "inventory_dir": str(inventory), "group": "test", "hostname": None,
                 "description": None, "latitude": None, "longitude": None, "altitude": None, "eth0_type": "dhcp",
                 "tunnel_port": 20001, "keepalive_port": 40002, "local_port": 22, "ansible_user": "root",
                 "jumphost_user": "gw-one", "installed_mlinux_version": "5.3.31", "mlinux_version": None,
                 "identity": None, "backup": False, "tunnel_remote_host": "jump.coop.example",
                 "tunnel_remote_ssh_port": 2222}, **extra)


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@coop"


@pytest.mark.parametrize("conduits, needle", [
    ("ssh_tunnel_remote_host: jumphost.example.org\n", "sets ssh_tunnel_remote_host: 'jumphost.example.org', but "
                                                       "the gateway's tunnel goes to jump.coop.example"),
    ("ssh_tunnel_remote_host: jump.coop.example\nssh_tunnel_ssh_port: 22\n",
     "sets ssh_tunnel_ssh_port: '22', but the gateway's tunnel goes to 2222"),
    ("ssh_tunnel_remote_host: \"{{ jumphost }}\"\n", "sets ssh_tunnel_remote_host: '\\x7b\\x7b jumphost"),
    ("authorized_keys:\n  - \"ssh-ed25519 AAAA-replace-with-your-operators-keys ops@example.org\"\n",
     "authorized_keys holds 'ssh-ed25519 AAAA-replace-with-your-operators-keys"),
    ("authorized_keys: []\n", "authorized_keys is empty"),
])
def test_an_org_that_make_apply_would_break_the_gateway_with_is_refused(tmp_path, conduits, needle):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org(tmp_path, conduits)
    before = {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(StageError) as caught:
        InventoryWriter(_tunnel_params(inventory)).run()
    assert needle in str(caught.value) and str(inventory / "group_vars" / "conduits.yml") in str(caught.value)
    assert {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_the_tunnel_end_is_written_for_the_host_where_the_org_sets_none_and_left_to_the_org_where_it_agrees(
        tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org(tmp_path, "authorized_keys:\n  - %s\nssh_tunnel_ssh_port: 2222\n" % KEY)
    InventoryWriter(_tunnel_params(inventory)).run()
    written = yaml.safe_load((inventory / "host_vars" / "gw-one.yml").read_text())
    assert written["ssh_tunnel_remote_host"] == "jump.coop.example" and "ssh_tunnel_ssh_port" not in written


def test_without_a_known_tunnel_end_it_says_it_cannot_check(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org(tmp_path, "ssh_tunnel_remote_host: jumphost.example.org\n")
    result = InventoryWriter(_tunnel_params(inventory, tunnel_remote_host=None, tunnel_remote_ssh_port=None)).run()
    assert any("ssh_tunnel_remote_host and ssh_tunnel_ssh_port are not checked" in w for w in result["warnings"])


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


YAML_HOSTS = """\
---
# the co-op's gateways, kept as YAML
conduits:
  children:
    test:
      hosts:
        gw-a:   # the roof
          description: "roof"
    production:
      hosts:
        gw-c:
ssh_host:
  hosts:
    jumphost.example.org:
"""


def test_a_yaml_hosts_inventory_gets_the_gateway_in_yaml_and_ansible_reads_every_host(tmp_path):
    import json
    import subprocess
    import sys
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org(tmp_path, "authorized_keys:\n  - %s\n" % KEY)
    (inventory / "hosts").write_text(YAML_HOSTS)
    InventoryWriter(_tunnel_params(inventory)).run()
    after = (inventory / "hosts").read_text()
    assert after == YAML_HOSTS.replace('          description: "roof"\n',
                                       '          description: "roof"\n        gw-one:\n')
    listed = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i",
                             str(inventory / "hosts"), "--list"], capture_output=True, text=True, timeout=120,
                            check=True)
    groups = json.loads(listed.stdout)
    assert sorted(groups["test"]["hosts"]) == ["gw-a", "gw-one"] and groups["production"]["hosts"] == ["gw-c"]
    again = InventoryWriter(_tunnel_params(inventory)).run()
    assert (inventory / "hosts").read_text() == after and not any("hosts" in a for a in again["actions"])


@pytest.mark.parametrize("hosts", [
    "conduits:\n  children:\n    production:\n      hosts:\n        gw-c:\n",  # no group test
    "conduits:\n  children:\n    test: {hosts: {gw-c: }}\n",  # flow style
])
def test_a_yaml_hosts_inventory_that_cannot_be_edited_line_by_line_is_refused_untouched(tmp_path, hosts):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org(tmp_path, "authorized_keys:\n  - %s\n" % KEY)
    (inventory / "hosts").write_text(hosts)
    with pytest.raises(StageError, match="add the gateway there yourself"):
        InventoryWriter(_tunnel_params(inventory)).run()
    assert (inventory / "hosts").read_text() == hosts
    assert not (inventory / "host_vars" / "gw-one.yml").exists()


VAULTED = """\
---
authorized_keys:
  - %s
ttn_api_key: !vault |
          $ANSIBLE_VAULT;1.1;AES256
          62313365396662343061393464336163383764373764613633653634306231386433626436623361
          6134333665353966363534333632666535333761666131620a663537646436643839616563336162
""" % KEY


def test_vault_and_unsafe_values_anywhere_in_the_org_are_kept_byte_for_byte(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org(tmp_path, VAULTED)
    (inventory / "host_vars").mkdir()
    operator = ("---\nhostname: gw-one\ndescription: !unsafe '{{ not a template }}'\nsecret: !vault |\n"
                "          $ANSIBLE_VAULT;1.1;AES256\n          6231\n")
    (inventory / "host_vars" / "gw-one.yml").write_text(operator)
    InventoryWriter(_tunnel_params(inventory)).run()
    after = (inventory / "host_vars" / "gw-one.yml").read_text()
    assert after.startswith(operator) and "ssh_tunnel_remote_port: 20001" in after
    assert (inventory / "group_vars" / "conduits.yml").read_text() == VAULTED
    again = InventoryWriter(_tunnel_params(inventory)).run()
    assert (inventory / "host_vars" / "gw-one.yml").read_text() == after and again["changed_keys"] == []


def test_a_vaulted_tunnel_host_cannot_be_checked_and_is_refused(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org(tmp_path, "ssh_tunnel_remote_host: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6231\n")
    with pytest.raises(StageError, match="as a !vault value, which cannot be checked"):
        InventoryWriter(_tunnel_params(inventory)).run()


def _org_with_keys(tmp_path):
    inventory = _org(tmp_path, "authorized_keys:\n  - %s\n" % KEY)
    (inventory / "host_vars").mkdir()
    return inventory


OPERATORS_OWN = "---\n# kept by the co-op\nhostname: gw-one\nlatitude: 42.44  # the roof\n"


@pytest.mark.parametrize("shape", ["gw-one.yaml", "gw-one", "gw-one/main.yml"])
def test_the_file_ansible_reads_is_the_one_edited_in_its_shape(tmp_path, shape):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    path = inventory / "host_vars" / shape
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OPERATORS_OWN)
    result = InventoryWriter(_tunnel_params(inventory)).run()
    assert result["host_vars"] == str(path)
    assert path.read_text().startswith(OPERATORS_OWN) and "ssh_tunnel_remote_port: 20001" in path.read_text()
    assert sorted(p.name for p in (inventory / "host_vars").rglob("*") if p.is_file()) == [path.name]


def test_a_host_vars_folder_without_the_pipelines_keys_gets_a_file_of_its_own(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    (inventory / "host_vars" / "gw-one").mkdir()
    (inventory / "host_vars" / "gw-one" / "site.yml").write_text("latitude: 42.44\n")
    result = InventoryWriter(_tunnel_params(inventory)).run()
    assert result["host_vars"] == str(inventory / "host_vars" / "gw-one" / "lorawan_conduit.yml")
    assert (inventory / "host_vars" / "gw-one" / "site.yml").read_text() == "latitude: 42.44\n"
    # Ansible reads lorawan_conduit.yml after site.yml: a placeholder there would shadow the operator's latitude
    written = yaml.safe_load((inventory / "host_vars" / "gw-one" / "lorawan_conduit.yml").read_text())
    assert "latitude" not in written and written["longitude"] == 0.0


def test_a_pipeline_key_in_another_file_of_the_folder_is_refused_untouched(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    (inventory / "host_vars" / "gw-one").mkdir()
    (inventory / "host_vars" / "gw-one" / "zz-site.yml").write_text("mlinux_version: 5.3.0\n")
    before = {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(StageError, match="zz-site.yml sets mlinux_version, which the pipeline keeps in"):
        InventoryWriter(_tunnel_params(inventory)).run()
    assert {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_two_files_ansible_would_merge_are_refused_untouched(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    for name in ("gw-one.yml", "gw-one.yaml"):
        (inventory / "host_vars" / name).write_text(OPERATORS_OWN)
    with pytest.raises(StageError, match="merge them"):
        InventoryWriter(_tunnel_params(inventory)).run()
    assert all((inventory / "host_vars" / name).read_text() == OPERATORS_OWN for name in ("gw-one.yml", "gw-one.yaml"))
    assert (inventory / "hosts").read_text() in ("[test]\n", MINIMAL_HOSTS)


def test_a_symlinked_file_stays_a_link_and_owner_group_mode_are_kept(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    shared = tmp_path / "shared-gw-one.yml"
    shared.write_text(OPERATORS_OWN)
    os.chmod(shared, 0o640)
    if os.geteuid() == 0:
        os.chown(shared, 1234, 2345)
    (inventory / "host_vars" / "gw-one.yml").symlink_to(shared)
    InventoryWriter(_tunnel_params(inventory)).run()
    link = inventory / "host_vars" / "gw-one.yml"
    assert link.is_symlink() and os.readlink(link) == str(shared)
    assert "ssh_tunnel_remote_port: 20001" in shared.read_text()
    stat = os.stat(shared)
    assert stat.st_mode & 0o7777 == 0o640
    if os.geteuid() == 0:
        assert (stat.st_uid, stat.st_gid) == (1234, 2345)


@pytest.mark.parametrize("read_only", ["host_vars file", "host_vars folder", "hosts"])
def test_read_only_is_refused_before_anything_is_written(tmp_path, read_only):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    if read_only == "host_vars file":
        (inventory / "host_vars" / "gw-one.yml").write_text(OPERATORS_OWN)
        os.chmod(inventory / "host_vars" / "gw-one.yml", 0o444)
    elif read_only == "host_vars folder":
        os.chmod(inventory / "host_vars", 0o555)
    else:
        os.chmod(inventory / "hosts", 0o444)
    before = {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    try:
        with pytest.raises(StageError, match="read-only"):
            InventoryWriter(_tunnel_params(inventory)).run()
        assert {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    finally:
        os.chmod(inventory / "host_vars", 0o755)


@pytest.mark.parametrize("hosts", [
    "[test]\n\n[retired]\ngw-one\n\n[conduits:children]\ntest\n",
    "conduits:\n  children:\n    test:\n      hosts:\nretired:\n  hosts:\n    gw-one:\n",
])
def test_a_gateway_listed_only_outside_conduits_is_refused(tmp_path, hosts):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    (inventory / "hosts").write_text(hosts)
    with pytest.raises(StageError, match="lists it in retired, outside conduits"):
        InventoryWriter(_tunnel_params(inventory)).run()
    assert (inventory / "hosts").read_text() == hosts and not list((inventory / "host_vars").iterdir())


@pytest.mark.parametrize("hosts", [
    "[production]\ngw-one\n\n[site_a:children]\nproduction\n\n[conduits:children]\nsite_a\n",
    "all:\n  children:\n    conduits:\n      children:\n        site_a:\n          children:\n            production:\n"
    "              hosts:\n                gw-one:\n",
])
def test_a_gateway_in_a_group_nested_under_conduits_is_taken_as_it_is(tmp_path, hosts):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    (inventory / "hosts").write_text(hosts)
    result = InventoryWriter(_tunnel_params(inventory)).run()
    assert result["groups"] == ["production"] and (inventory / "hosts").read_text() == hosts


JUMP_CONFIG = """\
# How ttn-multitech-cm reaches the gateways.
Host jumphost
    HostName jump.coop.example
    Port 2222
    User ops   # the operators' account

Host *
    IdentitiesOnly yes
"""


def _jump_keys(tmp_path):
    import subprocess
    keys = []
    for key_type in ("ed25519", "rsa"):
        path = tmp_path / ("jump_%s" % key_type)
        subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
        keys.append(" ".join((tmp_path / ("jump_%s.pub" % key_type)).read_text().split()[:2]))
    return keys


def _ssh_g(config, option):
    import subprocess
    out = subprocess.run(["ssh", "-G", "-F", str(config), "jumphost"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith(option + " ")][0]


def test_the_jumphosts_keys_are_pinned_where_the_jump_leg_reads_them_and_the_rest_stays(tmp_path):
    """ssh -G says where the jump leg looks; after the first gateway it finds the jumphost's keys there, and the
    next gateway changes neither file."""
    import subprocess
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    config = inventory.parent / "ssh_config"
    config.write_text(JUMP_CONFIG)
    keys = _jump_keys(tmp_path)
    result = InventoryWriter(_tunnel_params(inventory, jumphost_host_keys=keys, jump_host="jumphost")).run()
    known = inventory.parent / "known_hosts"
    assert _ssh_g(config, "userknownhostsfile") == str(known)
    assert config.read_text() == JUMP_CONFIG.replace(
        "    User ops   # the operators' account\n",
        "    User ops   # the operators' account\n    UserKnownHostsFile %s\n" % known)
    found = subprocess.run(["ssh-keygen", "-F", "[jump.coop.example]:2222", "-f", str(known)], capture_output=True,
                           text=True, check=True).stdout
    assert sorted(line.split(None, 1)[1] for line in found.splitlines() if not line.startswith("#")) == sorted(keys)
    assert any("pin the jumphost's host keys" in action for action in result["actions"])
    pinned = {path: path.read_bytes() for path in (config, known)}
    again = InventoryWriter(_tunnel_params(inventory, name="gw-two", tunnel_port=20003, keepalive_port=40006,
                                           jumphost_user="gw-two", jumphost_host_keys=keys,
                                           jump_host="jumphost")).run()
    assert not any("pin" in action for action in again["actions"])
    assert {path: path.read_bytes() for path in (config, known)} == pinned


def test_a_jump_leg_pinned_by_the_operator_is_left_alone(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    keys = _jump_keys(tmp_path)
    own = tmp_path / "ops_known_hosts"
    own.write_text("# mine\n[jump.coop.example]:2222 %s\n" % keys[1])
    config = inventory.parent / "ssh_config"
    config.write_text(JUMP_CONFIG.replace("Port 2222\n", "Port 2222\n    UserKnownHostsFile %s\n" % own))
    before = config.read_bytes(), own.read_bytes()
    InventoryWriter(_tunnel_params(inventory, jumphost_host_keys=keys, jump_host="jumphost")).run()
    assert (config.read_bytes(), own.read_bytes()) == before
    assert not (inventory.parent / "known_hosts").exists()


@pytest.mark.parametrize("case, needle", [
    ("another key", "holds another host key for [jump.coop.example]:2222"),
    ("set earlier", "sets UserKnownHostsFile for jumphost before its own entry"),
])
def test_a_jump_leg_that_cannot_be_pinned_is_refused_and_nothing_written(tmp_path, case, needle):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    keys = _jump_keys(tmp_path)
    config = inventory.parent / "ssh_config"
    if case == "another key":
        (tmp_path / "ops_known_hosts").write_text("[jump.coop.example]:2222 %s\n" % KEY.rsplit(" ", 1)[0])
        config.write_text(JUMP_CONFIG.replace("Port 2222\n", "Port 2222\n    UserKnownHostsFile %s\n"
                                              % (tmp_path / "ops_known_hosts")))
    else:
        config.write_text("Host *\n    UserKnownHostsFile /dev/null\n\n" + JUMP_CONFIG)
    before = {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(StageError) as caught:
        InventoryWriter(_tunnel_params(inventory, jumphost_host_keys=keys, jump_host="jumphost")).run()
    assert needle in str(caught.value) and "nothing was written" in str(caught.value)
    assert {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_a_write_that_fails_puts_back_what_the_run_wrote_before_it(tmp_path, monkeypatch):
    from ansible_collections.lorawan.conduit.plugins.module_utils import _ttn_inventory
    inventory = _org_with_keys(tmp_path)
    (inventory.parent / "ssh_config").write_text(JUMP_CONFIG)
    keys_folder = tmp_path / "keys"
    keys_folder.mkdir()
    keys = _jump_keys(keys_folder)
    before = {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    real = _ttn_inventory.write_atomic

    def full_disk(path, text, backup=None):
        if path.endswith("known_hosts"):
            raise OSError(28, "No space left on device")
        real(path, text, backup)

    monkeypatch.setattr(_ttn_inventory, "write_atomic", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _ttn_inventory.InventoryWriter(_tunnel_params(inventory, jumphost_host_keys=keys,
                                                      jump_host="jumphost")).run()
    assert {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_without_the_orgs_ssh_config_the_jump_leg_is_not_pinned_and_that_is_said_once(tmp_path):
    from ansible_collections.lorawan.conduit.plugins.module_utils._ttn_inventory import InventoryWriter
    inventory = _org_with_keys(tmp_path)
    result = InventoryWriter(_tunnel_params(inventory, jumphost_host_keys=_jump_keys(tmp_path),
                                            jump_host="jumphost")).run()
    said = [warning for warning in result["warnings"] if "is not pinned for make ping's jump leg" in warning]
    assert len(said) == 1 and str(inventory.parent / "ssh_config") in said[0]
    assert not (inventory.parent / "known_hosts").exists()


def test_a_tunnel_port_clash_is_seen_in_a_file_edited_since_it_was_last_read_and_each_file_is_parsed_once(
        tmp_path, monkeypatch):
    from ansible_collections.lorawan.conduit.plugins.module_utils import _ttn_inventory
    inventory = _org(tmp_path, "")
    parsed = []
    real_load = _ttn_inventory.load_mapping
    monkeypatch.setattr(_ttn_inventory, "load_mapping", lambda path, text: parsed.append(path) or real_load(path, text))
    others = []
    for number in range(1, 9):
        name = "gw-%d" % number
        del parsed[:]
        _ttn_inventory.InventoryWriter(_tunnel_params(inventory, name=name, jumphost_user=name,
                                                      tunnel_port=20000 + number)).run()
        others += [path for path in parsed if "host_vars" in path and not path.endswith(name + ".yml")]
    # the clash checks of eight writers in one process read each other gateway's file once, not once per writer
    assert sorted(others) == sorted(str(inventory / "host_vars" / ("gw-%d.yml" % number)) for number in range(1, 8))
    edited = inventory / "host_vars" / "gw-3.yml"
    edited.write_text(edited.read_text().replace("20003", "20042"))
    with pytest.raises(StageError) as caught:
        _ttn_inventory.InventoryWriter(_tunnel_params(inventory, name="gw-9", jumphost_user="gw-9",
                                                      tunnel_port=20042)).run()
    assert "tunnel port 20042 is already gw-3's" in str(caught.value)
    assert not (inventory / "host_vars" / "gw-9.yml").exists()
