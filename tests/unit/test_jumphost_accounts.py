"""Port arithmetic, key-line parsing and the registration logic, with a fake jumphost (accounts in memory,
key files on disk). The real path, through sshd and Ansible, is tests/functional/test_jumphost_register.py and
tests/integration/targets/jumphost_register."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._jumphost_accounts import (
    Account,
    BatchRegistrar,
    JumphostSystem,
    PortPlan,
    Registrar,
    unreserved_ports_warning,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._ssh_keys import (
    AuthorizedKey,
    authorized_key_line,
    parse_public_key,
)


def test_keepalive_formula_of_todays_jumphost():
    plan = PortPlan(20000, 32767, 40000)
    assert plan.keepalive(20147) == 40294
    assert plan.keepalive(20022) == 40044
    assert plan.top == 32767  # keepalive(32767) + 1 == 65535


def test_a_uid_past_the_formula_is_a_clear_error():
    plan = PortPlan(20000, 40000, 40000)
    assert plan.top == 32767
    with pytest.raises(StageError) as caught:
        plan.check(32768, "gw")
    assert "gives keepalive port 65536" in caught.value.message and "stops at tunnel port 32767" in caught.value.message


def test_allocation_takes_highest_plus_one_then_gaps_and_skips_busy_ports():
    plan = PortPlan(20000, 20004, 40000)
    assert plan.allocate(set(), set()) == 20000
    assert plan.allocate({20000, 20002}, set()) == 20003
    assert plan.allocate({20000, 20002}, {20003}) == 20004
    assert plan.allocate({20000, 20002}, {20003, 40008}) == 20001  # 20004's keepalive is taken
    assert plan.allocate({20000, 20001, 20002, 20003, 20004}, set()) is None


def test_overlapping_port_ranges_are_refused():
    with pytest.raises(StageError) as caught:
        PortPlan(20000, 32767, 25000)
    assert "overlap" in caught.value.message


@pytest.mark.parametrize("line,options", [
    ('restrict,permitlisten="localhost:1",command="echo \\"a, b\\"" ssh-ed25519 {key} c',
     [("restrict", None), ("permitlisten", "localhost:1"), ("command", 'echo "a, b"')]),
    ('from="10.0.0.1,10.0.0.2" ssh-ed25519 {key}', [("from", "10.0.0.1,10.0.0.2")]),
    ("ssh-ed25519 {key} a comment with spaces", []),
])
def test_option_lists_parse_like_sshd(ed25519, line, options):
    parsed = AuthorizedKey.parse(1, line.format(key=ed25519.blob_b64))
    assert parsed.problem is None and parsed.options == options
    again = AuthorizedKey.parse(1, authorized_key_line(parsed.key, parsed.options, parsed.key.comment))
    assert again.options == options and again.key.same_as(parsed.key)


@pytest.mark.parametrize("line,reason", [
    ('from="10.0.0.1 ssh-ed25519 AAAA', "no closing quote"),
    ("ssh-ed25519 AAAA!!", "not valid base64"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad", "truncated"),
    ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIBadBadBadBadBadBadBadBadBadBadBadBadBad", "holds a 'ssh-ed25519' key"),
    ("restrict", "not followed by a key"),
])
def test_malformed_lines_say_why(line, reason):
    parsed = AuthorizedKey.parse(3, line)
    assert not parsed.is_key and reason in parsed.problem


@pytest.fixture(scope="module")
def ed25519(tmp_path_factory):
    return parse_public_key(_key(tmp_path_factory.mktemp("keys"), "one"))


def _key(folder, name, key_type="ed25519"):
    path = os.path.join(str(folder), name)
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", name, "-f", path], check=True)
    with open(path + ".pub") as handle:
        return handle.read().strip()


class FakeJumphost(JumphostSystem):
    """Accounts and groups in memory, homes under a temporary folder, no ownership changes, nothing listening."""

    def __init__(self, root):
        super().__init__(run_command=None)
        self.root = root
        self.groups: dict[str, int] = {}
        self.users: dict[str, Account] = {}
        self.commands: list[str] = []
        self.owners: dict[str, tuple[int, int]] = {}

    def group_id(self, name):
        return self.groups.get(name)

    def account(self, name):
        return self.users.get(name)

    def accounts(self):
        return list(self.users.values())

    def add_group(self, name):
        self.commands.append(f"groupadd {name}")
        self.groups[name] = 1000 + len(self.groups)

    def add_account(self, name, group, uid=None, comment=None):
        self.commands.append(f"useradd {name}")
        home = os.path.join(self.root, name)
        os.makedirs(home, 0o755)
        self.users[name] = Account(name, uid if uid is not None else 900 + len(self.users), self.groups[group], home,
                                   "/usr/sbin/nologin")
        self.owners[home] = (self.users[name].uid, self.groups[group])

    def set_shell(self, name, shell):
        self.commands.append(f"usermod --shell {shell} {name}")
        self.users[name].shell = shell

    def listeners(self):
        return {}

    def set_owner(self, path, uid, gid, mode):
        os.chmod(path, mode)
        self.owners[path] = (uid, gid)

    def ownership(self, path):
        seen = JumphostSystem.ownership(path)
        return None if seen is None else self.owners.get(path, (-1, -1)) + (seen[2],)

    def write_atomic(self, path, text, uid, gid, mode):
        with open(path, "w") as handle:
            handle.write(text)
        self.set_owner(path, uid, gid, mode)

    @staticmethod
    def lock(path, timeout):
        return _NoLock()


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _params(**overrides):
    params = {"gateway": "ttn-nyc-00-08-00-4a-26-f1", "host_key": None, "organisation": "ttn-nyc",
              "account_mode": "per_gateway", "shared_account": None, "tunnel_port_min": 20000,
              "tunnel_port_max": 32767, "keepalive_port_base": 40000, "state": "present",
              "lock_file": "/nonexistent", "lock_timeout": 1}
    params.update(overrides)
    return params


def test_the_old_scripts_unrestricted_line_is_restricted_not_rekeyed(tmp_path, ed25519):
    system = FakeJumphost(str(tmp_path))
    system.add_group("ttn-nyc-gateways")
    system.add_account("ttn-nyc-00-08-00-4a-26-f1", "ttn-nyc-gateways", uid=20147)
    system.set_shell("ttn-nyc-00-08-00-4a-26-f1", "/bin/bash")
    keys = os.path.join(str(tmp_path), "ttn-nyc-00-08-00-4a-26-f1", ".ssh", "authorized_keys")
    os.makedirs(os.path.dirname(keys))
    with open(keys, "w") as handle:  # what `sort -u` of the old script left: the key, twice with other comments
        handle.write(ed25519.text() + "\n" + ed25519.text(comment="root@mtcdt") + "\n")
    result = Registrar(_params(host_key=ed25519.text()), system).run()
    assert result["changed"] and not result["rekeyed"]
    assert result["port"] == 20147 and result["keepalive_port"] == 40294
    assert result["actions"] == ["set the shell of ttn-nyc-00-08-00-4a-26-f1 to /usr/sbin/nologin",
                                 "restrict the key of ttn-nyc-00-08-00-4a-26-f1 to ports 20147 and 40294"]
    with open(keys) as handle:
        lines = handle.read().splitlines()
    assert lines == ['restrict,port-forwarding,permitlisten="localhost:20147",permitlisten="localhost:40294",'
                     'permitopen="127.0.0.1:40294",command="/usr/sbin/nologin" '
                     + ed25519.text(comment="ttn-nyc-00-08-00-4a-26-f1")]
    assert Registrar(_params(host_key=ed25519.text()), system).run()["changed"] is False


def test_shared_mode_keeps_malformed_and_foreign_lines_in_place(tmp_path, ed25519):
    system = FakeJumphost(str(tmp_path))
    params = _params(account_mode="shared", host_key=ed25519.text())
    check = Registrar(params, system, check_mode=True).run()
    assert check["changed"] and system.commands == [] and check["port"] == 20000
    Registrar(params, system).run()
    keys = os.path.join(str(tmp_path), "ttn-nyc-tunnel", ".ssh", "authorized_keys")
    with open(keys) as handle:
        registered = handle.read()
    foreign = "# operator's note\nfrom=\"10.0.0.1 ssh-rsa broken\n"
    with open(keys, "w") as handle:
        handle.write(foreign + registered)
    other = parse_public_key(_key(tmp_path, "other"))
    second = Registrar(_params(account_mode="shared", gateway="gw-2", host_key=other.text()), system).run()
    assert second["port"] == 20001 and second["keepalive_port"] == 40002
    assert second["malformed_lines"] == [{"path": keys, "line": 2, "reason": "an option value has no closing quote"}]
    with open(keys) as handle:
        text = handle.read()
    assert text.startswith(foreign + registered) and text.count("\n") == 4
    removed = Registrar(_params(account_mode="shared", state="absent"), system).run()
    assert removed["changed"] and removed["port"] == 20000
    with open(keys) as handle:
        lines = handle.read().splitlines()
    assert lines[:2] == foreign.splitlines() and len(lines) == 3 and lines[2].endswith(" gw-2")


def test_check_mode_plans_a_new_account_and_touches_nothing(tmp_path, ed25519):
    system = FakeJumphost(str(tmp_path))
    result = Registrar(_params(host_key=ed25519.text()), system, check_mode=True).run()
    assert result["changed"] and result["port"] == 20000 and result["keepalive_port"] == 40000
    assert system.commands == [] and os.listdir(str(tmp_path)) == []
    assert result["diff"]["before"] == "" and "permitlisten=\"localhost:20000\"" in result["diff"]["after"]


def test_an_existing_account_outside_the_group_is_never_taken_over(tmp_path, ed25519):
    system = FakeJumphost(str(tmp_path))
    system.add_group("ttn-nyc-gateways")
    system.add_group("staff")
    system.add_account("ttn-nyc-00-08-00-4a-26-f1", "staff", uid=1500)
    with pytest.raises(StageError) as caught:
        Registrar(_params(host_key=ed25519.text()), system).run()
    assert "is not a gateway account of group ttn-nyc-gateways" in caught.value.message
    assert caught.value.message.startswith("ttn-nyc-00-08-00-4a-26-f1: ")


def _batch_params(entries, **overrides):
    params = _params(gateways=entries, **overrides)
    del params["gateway"], params["host_key"]
    return params


@pytest.mark.parametrize("mode", ["per_gateway", "shared"])
def test_a_batch_in_check_mode_plans_a_port_for_each_gateway(tmp_path, mode):
    keys = [_key(tmp_path, "gw-%d" % index) for index in range(3)]
    system = FakeJumphost(str(tmp_path / "homes"))
    entries = [{"gateway": "gw-%d" % index, "host_key": key} for index, key in enumerate(keys)]
    planned = BatchRegistrar(_batch_params(entries, account_mode=mode), system, check_mode=True).run()
    assert system.commands == []
    assert [planned["registrations"]["gw-%d" % index]["port"] for index in range(3)] == [20000, 20001, 20002]
    done = BatchRegistrar(_batch_params(entries, account_mode=mode), system).run()
    assert done["changed"] and done["failed_gateways"] == []
    assert [done["registrations"]["gw-%d" % index]["port"] for index in range(3)] == [20000, 20001, 20002]
    again = BatchRegistrar(_batch_params(entries, account_mode=mode), system).run()
    assert not again["changed"] and not any(entry["changed"] for entry in again["registrations"].values())


def test_a_refused_gateway_fails_alone_and_the_rest_of_the_batch_registers(tmp_path, ed25519):
    other = _key(tmp_path, "other")
    system = FakeJumphost(str(tmp_path / "homes"))
    entries = [{"gateway": "gw-a", "host_key": ed25519.text()}, {"gateway": "gw-b", "host_key": "ssh-rsa not-a-key"},
               {"gateway": "gw-c", "host_key": None}, {"gateway": "gw-d", "host_key": other}]
    result = BatchRegistrar(_batch_params(entries), system).run()
    assert result["failed_gateways"] == ["gw-b", "gw-c"]
    refused = result["registrations"]["gw-b"]
    assert refused["failed"] and refused["msg"].startswith("gw-b: host_key is not an OpenSSH public key")
    assert result["registrations"]["gw-c"]["msg"] == "gw-c: no host key given for it (gateways[].host_key)"
    assert result["registrations"]["gw-a"]["port"] == 20000 and result["registrations"]["gw-d"]["port"] == 20001
    assert sorted(system.users) == ["gw-a", "gw-d"]


def test_a_batch_names_each_gateway_once(tmp_path, ed25519):
    entries = [{"gateway": "gw-a", "host_key": ed25519.text()}] * 2
    with pytest.raises(StageError) as caught:
        BatchRegistrar(_batch_params(entries), FakeJumphost(str(tmp_path)))
    assert caught.value.message == "gateways lists gw-a more than once: one entry a gateway"


def _fake_proc(tmp_path, port_range, reserved):
    ipv4 = tmp_path / "proc" / "sys" / "net" / "ipv4"
    ipv4.mkdir(parents=True)
    (ipv4 / "ip_local_port_range").write_text(port_range + "\n")
    (ipv4 / "ip_local_reserved_ports").write_text(reserved + "\n")
    return str(tmp_path / "proc")


def test_ports_an_outgoing_connection_may_take_are_named_with_the_sysctl_that_reserves_them(tmp_path):
    system = JumphostSystem(run_command=None, proc=_fake_proc(tmp_path, "32768\t60999", "40000-40001,50000"))
    exposed, reserved = system.unreserved_ephemeral([20000, 40000, 40001, 40002, 40003, 50000, 61000])
    assert (exposed, reserved) == ([40002, 40003], [(40000, 40001), (50000, 50000)])
    words = unreserved_ports_warning(exposed, reserved)
    assert "jumphost ports 40002-40003 " in words  # the reservations in force are kept in the line
    assert "sysctl -w net.ipv4.ip_local_reserved_ports=40000-40003,50000," in words
    assert JumphostSystem(run_command=None, proc=str(tmp_path / "nowhere")).unreserved_ephemeral([40000]) == ([], [])


def test_a_batch_says_which_of_its_ports_are_unreserved(tmp_path, ed25519):
    other = _key(tmp_path, "other")
    system = FakeJumphost(str(tmp_path / "homes"))
    system.proc = _fake_proc(tmp_path, "32768 60999", "40000-40001")
    entries = [{"gateway": "gw-a", "host_key": ed25519.text()}, {"gateway": "gw-b", "host_key": other},
               {"gateway": "gw-c", "host_key": "ssh-rsa not-a-key"}]
    result = BatchRegistrar(_batch_params(entries), system).run()
    # gw-a: 20000 and keepalive 40000-40001 (reserved); gw-b: 20001 and 40002-40003; gw-c was refused
    assert result["unreserved_ports"] == [40002, 40003] and result["reserved_ports"] == [(40000, 40001)]
    single = Registrar(dict(_batch_params([]), gateway="gw-a", host_key=ed25519.text()), system).run()
    assert single["port"] == 20000 and single["unreserved_ports"] == []


def test_the_jumphosts_host_keys_are_the_files_sshd_names(tmp_path):
    """``sshd -T`` names the HostKey files of the configuration sshd runs with; their .pub halves are returned
    without comments, and a missing or broken one is a clear error (the hand-over would pin nothing)."""
    ed25519, rsa = _key(tmp_path, "host_ed25519"), _key(tmp_path, "host_rsa", "rsa")
    calls = []

    def sshd(argv):
        calls.append(argv)
        return 0, ("port 22\nhostkey %s\nhostkey %s\n" % (tmp_path / "host_ed25519", tmp_path / "host_rsa")), ""

    system = JumphostSystem(run_command=sshd)
    assert system.host_keys("/etc/jh/sshd_config") == [parse_public_key(ed25519).text(comment=""),
                                                       parse_public_key(rsa).text(comment="")]
    assert calls[0][-3:] == ["-T", "-f", "/etc/jh/sshd_config"]
    (tmp_path / "host_rsa.pub").write_text("ssh-rsa broken\n")
    with pytest.raises(StageError) as caught:
        system.host_keys("/etc/jh/sshd_config")
    assert "host_rsa.pub is missing or not a public key" in caught.value.message
    with pytest.raises(StageError) as caught:
        JumphostSystem(run_command=lambda argv: (0, "port 22\n", "")).host_keys("/etc/jh/sshd_config")
    assert "names no host key" in caught.value.message


def _keys_file(system, account, text):
    path = os.path.join(system.root, account, ".ssh", "authorized_keys")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


@pytest.mark.parametrize("mode", ["per_gateway", "shared"])
def test_a_port_another_key_line_may_listen_on_is_never_handed_out(tmp_path, ed25519, mode):
    """A hand-made account whose key may listen on 20000 and 20002 (and another organisation's gateway account
    with UID 20001): the allocator skips all three, in both modes."""
    system = FakeJumphost(str(tmp_path))
    system.add_group("ops")
    system.add_account("legacy", "ops", uid=1500)
    _keys_file(system, "legacy", 'permitlisten="localhost:20000",permitlisten="20002" ' + ed25519.text() + "\n")
    system.add_group("ttn-other-gateways")
    system.add_account("ttn-other-gw", "ttn-other-gateways", uid=20001)
    key = parse_public_key(_key(tmp_path, "new"))
    result = Registrar(_params(account_mode=mode, host_key=key.text()), system).run()
    assert result["port"] == 20003, result


def test_a_registered_port_another_key_line_names_is_refused(tmp_path, ed25519):
    system = FakeJumphost(str(tmp_path))
    system.add_group("ttn-nyc-gateways")
    system.add_account("ttn-nyc-00-08-00-4a-26-f1", "ttn-nyc-gateways", uid=20147)
    system.add_group("ops")
    system.add_account("legacy", "ops", uid=1500)
    path = _keys_file(system, "legacy", "# hand-made\npermitlisten=\"localhost:40294\" " + ed25519.text() + "\n")
    with pytest.raises(StageError) as caught:
        Registrar(_params(host_key=ed25519.text()), system).run()
    assert caught.value.message == (
        "ttn-nyc-00-08-00-4a-26-f1: its port 40294 is also permitlisten on line 2 of %s (account legacy): two "
        "tunnels cannot listen on one port. Remove that line if it is left over, or remove this gateway (state "
        "absent) and register it again for a free port" % path)
    assert not os.path.exists(os.path.join(str(tmp_path), "ttn-nyc-00-08-00-4a-26-f1", ".ssh"))


def test_two_gateway_accounts_with_one_uid_are_refused(tmp_path, ed25519):
    system = FakeJumphost(str(tmp_path))
    system.add_group("ttn-nyc-gateways")
    system.add_account("ttn-nyc-00-08-00-4a-26-f1", "ttn-nyc-gateways", uid=20147)
    system.add_account("ttn-nyc-copy", "ttn-nyc-gateways", uid=20147)
    entries = [{"gateway": "ttn-nyc-00-08-00-4a-26-f1", "host_key": ed25519.text()},
               {"gateway": "ttn-nyc-new", "host_key": parse_public_key(_key(tmp_path, "new")).text()}]
    result = BatchRegistrar(_batch_params(entries), system).run()
    refused = result["registrations"]["ttn-nyc-00-08-00-4a-26-f1"]
    assert refused["failed"] and "shares UID 20147 with ttn-nyc-copy" in refused["msg"]
    assert result["failed_gateways"] == ["ttn-nyc-00-08-00-4a-26-f1"]
    assert result["registrations"]["ttn-nyc-new"]["port"] == 20148


def test_an_account_whose_creation_was_cut_off_gets_its_home_back(tmp_path, ed25519):
    """useradd makes the home root's with mode 000 and hands it over last: killed in between, the account exists
    but sshd cannot open its key file. Registering the gateway again hands the home over."""
    system = FakeJumphost(str(tmp_path))
    system.add_group("ttn-nyc-gateways")
    system.add_account("ttn-nyc-00-08-00-4a-26-f1", "ttn-nyc-gateways", uid=20147)
    home = os.path.join(str(tmp_path), "ttn-nyc-00-08-00-4a-26-f1")
    os.chmod(home, 0)
    system.owners[home] = (0, 0)
    first = Registrar(_params(host_key=ed25519.text()), system).run()
    assert (f"set {home} to owner ttn-nyc-00-08-00-4a-26-f1, mode 700 (was 0:0, mode 0: an account creation cut "
            "off?)") in first["actions"], first["actions"]
    assert system.ownership(home) == (20147, system.groups["ttn-nyc-gateways"], 0o700)
    os.chmod(home, 0o775)  # writable by its group: sshd's StrictModes refuses the key file
    again = Registrar(_params(host_key=ed25519.text()), system).run()
    assert again["actions"] == [f"set {home} to owner ttn-nyc-00-08-00-4a-26-f1, mode 755 (was 20147:1000, mode 775: "
                                "an account creation cut off?)"]
    assert Registrar(_params(host_key=ed25519.text()), system).run()["changed"] is False
