"""The device shell and filesystem of the simulator, without the network."""

from __future__ import annotations

import asyncio

import pytest

from tests.simulator.shell import BufferStdin, Io, Output, Session, run_line
from tests.simulator.vfs import Account, DeviceFs


class Hooks:
    def sysfs(self, attribute):
        return {"product-id": "MTCDT-246A"}.get(attribute)

    def check_password(self, user, password):
        return password == "secret"

    def may_sudo(self, user):
        return user == "mtadm"

    def process_names(self):
        return ["init"]


@pytest.fixture
def fs(tmp_path):
    fs = DeviceFs(root=str(tmp_path))
    for path, mode in (("/bin", 0o755), ("/usr/bin", 0o755), ("/usr/sbin", 0o755), ("/etc", 0o755),
                       ("/home/mtadm", 0o755), ("/var/volatile/tmp", 0o1777)):
        fs.mkdir(path, mode, parents=True)
    fs.chmod("/var/volatile/tmp", 0o1777)
    fs.symlink("var/volatile/tmp", "/tmp")
    for name in ("cat", "ls", "mkdir", "chmod", "ln", "sort", "sh", "stat", "grep", "sed", "rm"):
        fs.write_text(f"/bin/{name}", "#!/bin/sh\n", mode=0o755)
    for name in ("sudo", "id", "md5sum", "head"):
        fs.write_text(f"/usr/bin/{name}", "#!/bin/sh\n", mode=0o755)
    fs.write_text("/usr/sbin/mts-io-sysfs", "#!/bin/sh\n", mode=0o755)
    fs.accounts["root"] = Account("root", 0, 0, "/home/root", "root")
    fs.accounts["mtadm"] = Account("mtadm", 1000, 1000, "/home/mtadm", "mtadm")
    fs.set_owner("/home/mtadm", "mtadm", "mtadm")
    return fs


def sh(fs, line, user="mtadm", stdin=b""):
    out, err = Output(), Output()
    session = Session(fs, Hooks(), user, cwd="/home/mtadm", env={"HOME": "/home/mtadm"})
    status = asyncio.run(run_line(session, line, Io(BufferStdin(stdin), out, err)))
    return status, bytes(out.buffer).decode(), bytes(err.buffer).decode()


def test_quoting_variables_and_status(fs):
    assert sh(fs, "X='a b'; echo \"$X\" '$X' \\$X") == (0, "a b $X $X\n", "")
    assert sh(fs, "nope; echo $?")[1] == "127\n"
    assert sh(fs, "printf '%s=%s\\n' a 1 b 2")[1] == "a=1\nb=2\n"


def test_redirections_and_pipes(fs):
    assert sh(fs, "echo b > /tmp/f; echo a >> /tmp/f; sort /tmp/f | head -n 1")[1] == "a\n"
    assert sh(fs, "cat /nope 2>&1")[1] == "cat: /nope: No such file or directory\n"
    assert sh(fs, "cat < /tmp/f")[1] == "b\na\n"


def test_symlinks_stay_inside_the_device_root(fs, tmp_path):
    sh(fs, "sudo -S sh -c 'ln -s /etc /tmp/etc-link; echo x > /tmp/etc-link/y'", stdin=b"secret\n")
    assert (tmp_path / "etc" / "y").read_text() == "x\n"
    assert fs.resolve("/tmp/etc-link/../..") == "/"
    assert fs.host_path("/tmp/../../..").startswith(str(tmp_path))


def test_permissions_and_sudo(fs):
    status, _out, err = sh(fs, "echo x > /etc/x")
    assert status == 1 and "Permission denied" in err
    status, out, err = sh(fs, "sudo -S -p 'pw:' sh -c 'echo x > /etc/x; stat -c %U:%a /etc/x'", stdin=b"secret\n")
    assert (status, out, err) == (0, "root:644\n", "pw:")
    status, _out, err = sh(fs, "sudo -S true", stdin=b"a\nb\nc\n")
    assert status == 1 and "3 incorrect password attempts" in err
    status, _out, err = sh(fs, "sudo id", stdin=b"secret\n")
    assert status == 1 and "a terminal is required" in err
    assert sh(fs, "sudo -S id -u; sudo -n id -u", stdin=b"secret\n")[1] == "0\n0\n", "sudo remembers the session"


def test_unsupported_syntax_fails_loudly(fs):
    for line in ("echo `id`", "if true; then echo; fi", "cat <<EOF"):
        status, _out, err = sh(fs, line)
        assert status == 2 and "not supported" in err, line


def test_sed_in_place_with_posix_classes(fs):
    sh(fs, "printf '%s\\n' '  check_me || exit 1' 'keep' > /tmp/s")
    assert sh(fs, "sed -i 's/^\\([[:space:]]*\\)check_me/\\1# check_me/' /tmp/s; cat /tmp/s")[1] == \
        "  # check_me || exit 1\nkeep\n"


def test_space_accounting(fs):
    from tests.simulator.vfs import Mount
    fs.mounts = [Mount("/var/volatile", "tmpfs", "tmpfs", 4)]
    assert sh(fs, "printf '%s' 1234567890 > /tmp/small")[0] == 0
    status, _out, err = sh(fs, f"printf '%s' {'x' * 5000} > /tmp/big")
    assert status == 1 and "No space left on device" in err
    assert fs.free_bytes("/tmp") == 3 * 1024
