"""Simulated units built from real parts (simulator/unit.py), tried the way people reach a real Conduit:
OpenSSH's ssh/scp/sftp and paramiko with keys of their own, busybox's shell, real sudo, real init scripts, and
ttn-multitech-cm's own mlinux-firmware-upgrade, whose reboot hands the unit back to the simulator."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import threading

import paramiko
import pytest

from tests.conftest import _next_subnet, ssh_client, ssh_run
from simulator import keys
from simulator.images import build_image
from simulator.jumphost import Jumphost, free_ports
from simulator.unit import Account, UnitRoot, UnitSpec, UnitSystem, require_parts, wait_gone
from simulator.harness import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="units run in namespaces of their own (root)")

PASSWORD = "Unit-test-pw1!"
# stage a flash as mlinux-firmware-upgrade does, run the shutdown script, and show whether the flash is still staged
UMOUNTFS_WITH_A_FLASH_STAGED = ("sh -c 'touch /var/volatile/do_flash_upgrade; /etc/init.d/umountfs; "
                                "ls /var/volatile/do_flash_upgrade'")


class Loop:
    """An event loop in a thread, for the units' async API."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Unit:
    """One unit: its files, its running system and what it reported."""

    def __init__(self, loop: Loop, path: str, firmware: str = "mlinux", cellular: bool = False,
                 shutdown_grace: float = 0.5):
        self.loop = loop
        self.address = _next_subnet().replace(".0/24", ".10")
        self.root = UnitRoot(path)
        os.makedirs(path, exist_ok=True)
        private, public = keys.new_rsa_host_key("root@mtcdt")
        accounts = [Account("root", 0, 0, "root", "/home/root", PASSWORD)]
        if firmware == "mlinux":
            accounts.append(Account("mtadm", 1000, 1000, "mtadm", "/home/mtadm", PASSWORD, sudo=True))
        else:
            accounts.append(Account("admin", 1001, 1001, "admin", "/home/admin", PASSWORD, sudo=True))
        self.user = accounts[1].name
        self.spec = UnitSpec(firmware=firmware, hostname="mtcdt", address=self.address, ssh_port=22,
                             sysfs={"product-id": "MTCDT-L4N1-247A" if cellular else "MTCDT-246A",
                                    "hw-version": "MTCDT-0.1", "has-radio": "1" if cellular else "0",
                                    "lora/eui": "00:80:00:00:A0:00:15:00", "mac-eth": "00:08:00:4A:26:F1"},
                             accounts=accounts, host_keys=[(private, public.decode())],
                             version="5.3.31" if firmware == "mlinux" else "5.3.8", volatile_mib=32,
                             shutdown_grace=shutdown_grace)
        self.host_key = public.decode()
        self.root.build(self.spec, require_parts())
        self.events: list[tuple[str, ...]] = []
        self.shutdown = threading.Event()
        self.system = self.boot()

    def boot(self) -> UnitSystem:
        async def on_event(event):
            self.events.append(event)
            if event[0] == "shutdown":
                self.shutdown.set()
        system = UnitSystem(self.root, "mtcdt", self.spec.volatile_mib, on_event)
        self.loop.run(system.start())
        return system

    def login(self, user: str | None = None, **kwargs) -> paramiko.SSHClient:
        return ssh_client(self.address, 22, user or self.user, PASSWORD, **kwargs)

    def run(self, command: str, user: str | None = None, stdin: bytes | None = None):
        client = self.login(user)
        try:
            return ssh_run(client, command, stdin=stdin)
        finally:
            client.close()

    def sudo(self, command: str):
        """``command`` through sudo -S, with the password on standard input."""
        return self.run("sudo -S -p '' " + command, stdin=PASSWORD.encode() + b"\n")

    def stop(self):
        self.loop.run(self.system.kill())


@pytest.fixture(scope="module")
def loop():
    each = Loop()
    yield each
    each.close()


@pytest.fixture(scope="module")
def mlinux(loop, tmp_path_factory):
    unit = Unit(loop, str(tmp_path_factory.mktemp("mlinux-unit")))
    yield unit
    unit.stop()


def ssh_options(*extra: str) -> list[str]:
    return ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=no", *extra]


def test_openssh_falls_back_to_the_password_after_a_refused_key(mlinux, tmp_path):
    """ssh, scp and sftp offer a key the unit does not know first, then the password (the runbook's way in)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sshpass = ["sshpass", "-p", PASSWORD]
    auth = ["-i", str(key), "-o", "PreferredAuthentications=publickey,password", "-o", "IdentitiesOnly=yes"]
    done = subprocess.run([*sshpass, "ssh", *ssh_options(*auth), f"mtadm@{mlinux.address}", "id -un"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (0, "mtadm\n"), done.stderr
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(200000))
    done = subprocess.run([*sshpass, "scp", *ssh_options(*auth), str(payload), f"mtadm@{mlinux.address}:/tmp/p.bin"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*sshpass, "sftp", *ssh_options(*auth), "-b", "-", f"mtadm@{mlinux.address}"],
                          input="ls -l /tmp/p.bin\n", capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and "200000" in done.stdout, done.stderr
    assert mlinux.run("md5sum /tmp/p.bin").stdout.split()[0] == subprocess.run(
        ["md5sum", str(payload)], capture_output=True, text=True, check=True).stdout.split()[0]


def test_paramiko_with_keys_of_its_own_still_logs_in_with_the_password(mlinux, tmp_path, monkeypatch):
    """look_for_keys=True with keys in ~/.ssh the unit does not know: OpenSSH lets the password through."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    for kind in ("rsa", "ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(home / ".ssh" / f"id_{kind}")], check=True)
    monkeypatch.setenv("HOME", str(home))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(mlinux.address, 22, "mtadm", PASSWORD, look_for_keys=True, allow_agent=False, timeout=10)
    try:
        assert ssh_run(client, "whoami").stdout == "mtadm\n"
    finally:
        client.close()


def test_the_units_openssh_negotiates_what_its_8_4p1_would(mlinux):
    """The unit's OpenSSH says 8.4p1 in its package list: no sntrup761x25519 key exchange (that came with 8.5),
    whichever way the handshake goes, so a run's SSH costs what it would against a real unit."""
    offered = ["-o", "KexAlgorithms=sntrup761x25519-sha512@openssh.com,curve25519-sha256"]
    done = subprocess.run(["sshpass", "-p", PASSWORD, "ssh", "-v", *ssh_options(*offered), f"mtadm@{mlinux.address}",
                           "true"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "kex: algorithm: curve25519-sha256" in done.stderr
    refused = subprocess.run(["sshpass", "-p", PASSWORD, "ssh", "-v", *ssh_options(
        "-o", "KexAlgorithms=sntrup761x25519-sha512@openssh.com"), f"mtadm@{mlinux.address}", "true"],
        capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 255 and "no matching key exchange method" in refused.stderr
    client = mlinux.run("ssh -G jumphost").stdout.splitlines()
    offers = next(line.split()[1] for line in client if line.startswith("kexalgorithms "))
    assert offers.split(",")[0] == "curve25519-sha256" and "sntrup761" not in offers


def test_busybox_shell_and_applets(mlinux):
    script = r"""
f() { echo "f:$1"; }
f one
for i in $(seq 1 3); do printf '%s,' "$i"; done; echo
case mtcdt in mtc*) echo case-ok ;; *) echo case-bad ;; esac
if [ -d /var/config ]; then echo if-ok; else echo if-bad; fi
cat <<EOF
here $(echo doc)
EOF
echo 'a b c' | tr ' ' '-' | cut -d- -f2
echo '1 2' | awk '{print $1+$2}'
expr 6 \* 7
echo x > /tmp/s.txt; echo 'if mts_check x; then' >> /tmp/s.txt
sed -i '/mts_check/s/then/then # edited/' /tmp/s.txt; tail -n 1 /tmp/s.txt
find /etc/init.d -name functions
echo /etc/hostname | xargs cat
which sh | xargs readlink
nohup true >/dev/null 2>&1; echo nohup=$?
tar -cf /tmp/t.tar -C /etc hostname && tar -tf /tmp/t.tar
free >/dev/null && uptime >/dev/null && ip addr >/dev/null && ifconfig >/dev/null && ps >/dev/null && echo system-ok
sleep 30 & kill $! && echo kill-ok
opkg list-installed | grep -c mlinux-version
python3 -c 'import json; print(json.dumps({"ok": True}))'
"""
    result = mlinux.run(script)
    assert result.status == 0, result.stderr
    assert result.stdout.splitlines() == [
        "f:one", "1,2,3,", "case-ok", "if-ok", "here doc", "b", "3", "42", "if mts_check x; then # edited",
        "/etc/init.d/functions", "mtcdt", "/usr/bin/busybox", "nohup=0", "hostname", "system-ok", "kill-ok", "1",
        '{"ok": true}']


def test_real_sudo(mlinux):
    """-S with the password on stdin, -A with SUDO_ASKPASS, VAR=value, -n without a password, a wrong password."""
    assert mlinux.sudo("id -u").stdout == "0\n"
    askpass = f"printf '#!/bin/sh\\necho %s\\n' {shlex.quote(PASSWORD)} > /tmp/askpass; chmod 700 /tmp/askpass; "
    result = mlinux.run(askpass + "SUDO_ASKPASS=/tmp/askpass sudo -A GREETING=hello sh -c 'echo $GREETING $(id -u)'")
    assert (result.status, result.stdout) == (0, "hello 0\n"), result.stderr
    refused = mlinux.run("sudo -n true")
    assert refused.status == 1 and "a password is required" in refused.stderr
    wrong = mlinux.run("sudo -S -p '' true", stdin=b"not-the-password\n")
    assert wrong.status == 1 and "incorrect password" in wrong.stderr


def test_the_runbook_sed_line_disables_the_real_cellular_check(loop, tmp_path):
    """The AEP unit's umountfs holds the real `if ! mts_fw_check_hw_support_mp ...; then` line; the runbook's sed
    turns it into `if false ; then # <the line>` and the flash is no longer cancelled."""
    unit = Unit(loop, str(tmp_path / "aep"), firmware="aep", cellular=True)
    try:
        text = unit.run("cat /etc/init.d/umountfs").stdout
        assert '\tif ! mts_fw_check_hw_support_mp "$mpower_version" "$hw_version"; then\n' in text
        assert unit.run("sh /etc/init.d/umountfs").status == 0
        staged = unit.sudo(UMOUNTFS_WITH_A_FLASH_STAGED)
        assert "upgrade cancelled" in staged.stdout and staged.status != 0
        sed = "sed -i -e '/if.*mts_fw_check_hw_support/s/if.*/if false ; then # &/' /etc/init.d/umountfs"
        assert unit.sudo(sed).status == 0
        assert '\tif false ; then # if ! mts_fw_check_hw_support_mp "$mpower_version" "$hw_version"; then\n' in \
            unit.run("cat /etc/init.d/umountfs").stdout
        kept = unit.sudo(UMOUNTFS_WITH_A_FLASH_STAGED)
        assert kept.status == 0 and "cancelled" not in kept.stdout
    finally:
        unit.stop()


@pytest.fixture(scope="module")
def jumphost(loop, tmp_path_factory):
    address = _next_subnet().replace(".0/24", ".1")
    host = Jumphost(str(tmp_path_factory.mktemp("jumphost")), address, free_ports(address, 1)[0])
    info = loop.run(host.start())
    yield info.as_dict()
    loop.run(host.stop())


def test_init_scripts_run_as_written(mlinux, jumphost):
    """ttn-multitech-cm's ssh_tunnel.initd, installed as it is, starts a real ssh that holds a reverse tunnel on
    the real sshd jumphost; status and stop are the script's own; update-rc.d's links start it at boot."""
    cm = require_parts()
    with open(os.path.join(cm, "roles/conduit/files/ssh_tunnel.initd")) as handle:
        mlinux.root.write("/etc/init.d/ssh_tunnel", handle.read(), 0o755)
    tunnel_port = free_ports("127.0.0.1", 1)[0]
    auth_keys = os.path.join(jumphost["state_dir"], "home", jumphost["admin_user"], ".ssh", "authorized_keys")
    with open(auth_keys, "a") as handle:
        handle.write(mlinux.host_key + "\n")
    mlinux.root.write("/etc/default/ssh_tunnel", "\n".join([
        "LOCAL_PORT=22", f"REMOTE_HOST={jumphost['address']}", f"REMOTE_USER={jumphost['admin_user']}",
        f"REMOTE_PORT={tunnel_port}", "SSH_KEY=/etc/ssh/ssh_host_rsa_key", f"SSH_PORT={jumphost['port']}",
        'DAEMON_ARGS="-f -o StrictHostKeyChecking=no -o ServerAliveInterval=30 -o ExitOnForwardFailure=yes"', ""]))
    assert mlinux.sudo("/etc/init.d/ssh_tunnel status").status == 1
    # ssh -f keeps the descriptors it was given: the session's own would hold the channel open
    assert mlinux.sudo("/etc/init.d/ssh_tunnel start >/dev/null 2>&1").status == 0
    # through the jumphost's tunnel port, the unit's own sshd answers with the unit's host key
    jump = ssh_client(jumphost["address"], jumphost["port"], jumphost["admin_user"],
                      key_filename=jumphost["admin_key"])
    try:
        def open_tunnel():
            try:
                return jump.get_transport().open_channel("direct-tcpip", ("localhost", tunnel_port), ("", 0))
            except paramiko.ChannelException:
                return None  # the unit's ssh asks for the forward once it has logged in
        channel = wait_until(open_tunnel, 20, "the tunnel port on the jumphost")
        through = ssh_client("localhost", tunnel_port, "mtadm", PASSWORD, sock=channel)
        try:
            assert through.get_transport().get_remote_server_key().get_base64() == mlinux.host_key.split()[1]
            assert ssh_run(through, "hostname").stdout == "mtcdt\n"
        finally:
            through.close()
    finally:
        jump.close()
    assert mlinux.sudo("/etc/init.d/ssh_tunnel status").status == 0
    assert mlinux.run("pgrep -x ssh").status == 0
    assert mlinux.sudo("/etc/init.d/ssh_tunnel stop").status == 0
    assert mlinux.run("pgrep -x ssh").status == 1
    # a script that says something else does something else: an empty REMOTE_HOST is its own `exit 1`
    mlinux.sudo("sed -i 's/^REMOTE_HOST=.*/REMOTE_HOST=/' /etc/default/ssh_tunnel")
    assert mlinux.sudo("/etc/init.d/ssh_tunnel start").status == 1
    links = mlinux.sudo("update-rc.d ssh_tunnel defaults 95 30; ls /etc/rc5.d /etc/rc6.d").stdout
    assert "S95ssh_tunnel" in links and "K30ssh_tunnel" in links


def _flash(unit: Unit, tmp_path, defect: str | None = None) -> tuple[int | None, str]:
    """Upload an image and run the real flash script on it; its exit status (None: no status) and output."""
    image = build_image(str(tmp_path / "image.bin"), "mtcdt", 1 << 20, "5.3.40", defect)
    client = unit.login()
    try:
        sftp = client.open_sftp()
        sftp.put(image.path, "/tmp/firmware.bin")
        sftp.close()
        result = ssh_run(client, "sudo -S -p '' /usr/sbin/mlinux-firmware-upgrade /tmp/firmware.bin",
                         stdin=PASSWORD.encode() + b"\n")
    finally:
        client.close()
    return result.status, result.stdout + result.stderr


@pytest.mark.parametrize("grace, status", [(1.0, 1), (0, None)])
def test_flash_command_ends_with_a_status_or_a_dropped_link(loop, tmp_path, grace, status):
    """ttn-multitech-cm's mlinux-firmware-upgrade checks the image, stages it and runs busybox's reboot. With the
    unit still stopping services when reboot returns, it says `Reboot failed` and exits 1 before the link drops;
    a unit that stops at once cuts the session with no status. Either way the flash is staged."""
    unit = Unit(loop, str(tmp_path / "unit"), shutdown_grace=grace)
    try:
        seen_status, output = _flash(unit, tmp_path)
        assert "Checking MD5 for rootfs.jffs2" in output and "Rebooting" in output
        assert seen_status == status, output
        if status is not None:
            assert "Reboot failed" in output
        assert unit.shutdown.wait(10)
        assert ("shutdown", "reboot") in unit.events
        staged = unit.system.volatile_path("/var/volatile/flash-upgrade/upgrade.bin")
        assert staged and os.path.getsize(staged) > 1 << 20
        assert os.path.exists(unit.system.volatile_path("/var/volatile/do_flash_upgrade"))
    finally:
        unit.stop()


def test_a_refused_image_is_refused_by_the_real_script(mlinux, tmp_path):
    status, output = _flash(mlinux, tmp_path, "bad-md5")
    assert status == 1 and "MD5 check failed, upgrade aborted" in output
    assert mlinux.system.running and ("shutdown", "reboot") not in mlinux.events


UNIT_OWNER = """
import asyncio, sys
sys.path.insert(0, {repo!r})
from simulator.unit import UnitRoot, UnitSystem
async def main():
    system = UnitSystem(UnitRoot({path!r}), "mtcdt", 32)
    await system.start()
    print(system.init_pid, flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_killing_the_simulator_ends_every_process_of_its_units(mlinux, tmp_path):
    """A unit started by a process that is then SIGKILLed leaves nothing running: not sshd, not a session, not
    what a session left behind."""
    owner_root = UnitRoot(str(tmp_path / "owned"))
    os.makedirs(owner_root.path)
    spec = mlinux.spec
    owned_spec = UnitSpec(**{**vars(spec), "address": _next_subnet().replace(".0/24", ".10")})
    owner_root.build(owned_spec, require_parts())
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    owner = subprocess.Popen([sys.executable, "-c", UNIT_OWNER.format(repo=repo, path=owner_root.path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        init_pid = int(owner.stdout.readline())
        client = ssh_client(owned_spec.address, 22, "mtadm", PASSWORD)
        try:
            ssh_run(client, "nohup sleep 600 >/dev/null 2>&1 &")
        finally:
            client.close()
        namespace = _pid_namespace(init_pid)
        members = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pid_namespace(int(p)) == namespace]
        assert len(members) >= 3  # init, sshd, the session's sleep
        owner.kill()
        owner.wait()
        assert wait_gone(members) == []
    finally:
        if owner.poll() is None:
            owner.kill()


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def test_the_collection_disables_the_real_cellular_check_and_proves_it(loop, tmp_path):
    """mlinux_upgrade's cellular fix on the line a real unit has: planned in check mode with nothing changed,
    applied with only that line changed, after which umountfs keeps the staged flash; a second run has nothing
    to do; a call of the check in a form it does not know is refused with the line quoted, nothing changed."""
    from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import DeviceSession
    from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
    from ansible_collections.lorawan.conduit.plugins.module_utils._mlinux_upgrade import Upgrader

    unit = Unit(loop, str(tmp_path / "aep"), firmware="aep", cellular=True)
    params = {"name": "aep-cell", "address": unit.address, "cellular_fix": True}
    session = DeviceSession(unit.address, 22, "admin", password=PASSWORD, host_key_policy="ignore")
    umountfs = unit.root.host("/etc/init.d/umountfs")
    try:
        session.connect()
        original = open(umountfs).read()
        check_line = '\tif ! mts_fw_check_hw_support_mp "$mpower_version" "$hw_version"; then'
        number = original.splitlines().index(check_line) + 1
        planned = Upgrader(params, check_mode=True)
        planned._cellular_fix(session)  # pylint: disable=protected-access
        disabled = '\tif false ; then # if ! mts_fw_check_hw_support_mp "$mpower_version" "$hw_version"; then'
        assert planned.result["cellular_fix"] == [{"line": number, "before": check_line, "after": disabled}]
        assert "umountfs line %d" % number in planned.actions[0]
        assert open(umountfs).read() == original
        applied = Upgrader(params)
        applied._cellular_fix(session)  # pylint: disable=protected-access
        lines = original.splitlines()
        lines[number - 1] = disabled
        assert open(umountfs).read() == "\n".join(lines) + "\n"
        kept = unit.sudo(UMOUNTFS_WITH_A_FLASH_STAGED)
        assert kept.status == 0 and "cancelled" not in kept.stdout
        again = Upgrader(params)
        again._cellular_fix(session)  # pylint: disable=protected-access
        assert again.result["cellular_fix"] == [] and again.actions == []
        unknown = "#!/bin/sh\n. /etc/init.d/functions\nmts_fw_check_hw_support_mp || exit 1\n"
        unit.root.write("/etc/init.d/umountfs", unknown, 0o755)
        with pytest.raises(StageError) as refused:
            Upgrader(params)._cellular_fix(session)  # pylint: disable=protected-access
        assert "line 3" in refused.value.message and "'mts_fw_check_hw_support_mp || exit 1'" in refused.value.message
        assert open(umountfs).read() == unknown
    finally:
        session.close()
        unit.stop()


@pytest.mark.parametrize("grace", [1.0, 0])
def test_the_collection_takes_every_ending_of_the_flash_command(loop, tmp_path, grace):
    """mlinux_upgrade's trigger against the real script: a status 1 with `Reboot failed` before the link drops, and
    a link cut with no status, both mean the flash is under way; an image the script refuses is a failure that
    quotes the script."""
    from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import DeviceSession
    from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
    from ansible_collections.lorawan.conduit.plugins.module_utils._mlinux_upgrade import Upgrader

    unit = Unit(loop, str(tmp_path / "unit"), shutdown_grace=grace)
    params = {"name": "mlinux-flash", "address": unit.address, "remote_path": "/tmp/firmware.bin"}
    try:
        for defect in ("bad-md5", None):
            image = build_image(str(tmp_path / f"{defect}.bin"), "mtcdt", 1 << 20, "5.3.40", defect)
            session = DeviceSession(unit.address, 22, "mtadm", password=PASSWORD, host_key_policy="ignore")
            session.connect()
            try:
                session.upload(image.path, "/tmp/firmware.bin")
                if defect:
                    with pytest.raises(StageError) as refused:
                        Upgrader(params)._trigger(session)  # pylint: disable=protected-access
                    assert "refused the image (status 1)" in refused.value.message
                    assert "MD5 check failed, upgrade aborted" in refused.value.message
                    assert ("shutdown", "reboot") not in unit.events
                else:
                    Upgrader(params)._trigger(session)  # pylint: disable=protected-access
            finally:
                session.close()
        assert unit.shutdown.wait(10)
        assert os.path.exists(unit.system.volatile_path("/var/volatile/do_flash_upgrade"))
    finally:
        unit.stop()
