"""A per-device filesystem: real files under one host directory, device paths.

Each simulated device owns a directory on the host that stands for its ``/``.
Device paths are resolved component by component inside that directory, with
symlinks followed *as the device would* (an absolute link target means the
device's root, never the host's), so nothing a client does can reach a host
file. File contents live on disk (a 256 MB upload costs no memory); owners
live in a table here because the host's users are not the device's.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass, field

MAX_SYMLINK_HOPS = 40


class VfsError(OSError):
    """An error with the errno and device path a shell would report."""

    def __init__(self, err: int, path: str):
        super().__init__(err, os.strerror(err), path)
        self.device_path = path

    def shell_message(self) -> str:
        return f"{self.device_path}: {os.strerror(self.errno)}"


@dataclass
class Mount:
    """A mount point with its own size accounting (tmpfs, /var/config)."""

    point: str
    fstype: str
    device: str
    size_kib: int
    wiped_on_reboot: bool = False


@dataclass
class Account:
    name: str
    uid: int
    gid: int
    home: str
    group: str
    shell: str = "/bin/sh"


@dataclass
class DeviceFs:
    """The filesystem of one device, rooted at ``root`` on the host."""

    root: str
    mounts: list[Mount] = field(default_factory=list)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)

    # --- path resolution -------------------------------------------------

    def host_path(self, path: str, cwd: str = "/", follow_last: bool = True) -> str:
        """Return the host path for a device path, following device symlinks."""
        return self._host(self.resolve(path, cwd, follow_last))

    def _host(self, canonical: str) -> str:
        return os.path.join(self.root, canonical.lstrip("/"))

    def resolve(self, path: str, cwd: str = "/", follow_last: bool = True) -> str:
        """Canonical device path of ``path`` (symlinks resolved inside the root)."""
        if not path:
            raise VfsError(errno.ENOENT, path)
        if not path.startswith("/"):
            path = posixpath.join(cwd, path)
        pending = [part for part in path.split("/") if part]
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/" + "/".join(resolved + [part])
            host = self._host(candidate)
            is_last = not pending
            if os.path.islink(host) and (follow_last or not is_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise VfsError(errno.ELOOP, path)
                target = os.readlink(host)
                target_parts = [p for p in target.split("/") if p]
                if target.startswith("/"):
                    resolved = []
                pending = target_parts + pending
                continue
            resolved.append(part)
        return "/" + "/".join(resolved)

    # --- queries ----------------------------------------------------------

    def exists(self, path: str, cwd: str = "/", follow: bool = True) -> bool:
        try:
            host = self.host_path(path, cwd, follow_last=follow)
        except VfsError:
            return False
        return os.path.lexists(host) if not follow else os.path.exists(host)

    def lstat(self, path: str, cwd: str = "/") -> os.stat_result:
        host = self.host_path(path, cwd, follow_last=False)
        try:
            return os.lstat(host)
        except FileNotFoundError:
            raise VfsError(errno.ENOENT, path) from None

    def stat(self, path: str, cwd: str = "/") -> os.stat_result:
        host = self.host_path(path, cwd)
        try:
            return os.stat(host)
        except FileNotFoundError:
            raise VfsError(errno.ENOENT, path) from None

    def owner(self, path: str, cwd: str = "/", follow: bool = True) -> tuple[str, str]:
        canonical = self.resolve(path, cwd, follow_last=follow)
        return self.owners.get(canonical, ("root", "root"))

    def readlink(self, path: str, cwd: str = "/") -> str:
        host = self.host_path(path, cwd, follow_last=False)
        if not os.path.islink(host):
            raise VfsError(errno.EINVAL, path)
        return os.readlink(host)

    def listdir(self, path: str, cwd: str = "/") -> list[str]:
        host = self.host_path(path, cwd)
        if not os.path.isdir(host):
            raise VfsError(errno.ENOTDIR if os.path.exists(host) else errno.ENOENT, path)
        return sorted(os.listdir(host))

    def read_bytes(self, path: str, cwd: str = "/") -> bytes:
        host = self.host_path(path, cwd)
        if os.path.isdir(host):
            raise VfsError(errno.EISDIR, path)
        try:
            with open(host, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise VfsError(errno.ENOENT, path) from None

    def read_text(self, path: str, cwd: str = "/") -> str:
        return self.read_bytes(path, cwd).decode("utf-8", "replace")

    # --- permissions --------------------------------------------------------

    def may(self, user: str, path: str, want: int, cwd: str = "/") -> bool:
        """Whether ``user`` has access ``want`` (4 read, 2 write, 1 exec) to ``path``."""
        if user == "root":
            return True
        st = self.stat(path, cwd)
        owner, group = self.owner(path, cwd)
        account = self.accounts.get(user)
        if owner == user:
            bits = (st.st_mode >> 6) & 7
        elif account is not None and group == account.group:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        return bits & want == want

    def check_create(self, user: str, path: str, cwd: str = "/") -> None:
        """Raise EACCES unless ``user`` may create or replace ``path``."""
        canonical = self.resolve(path, cwd, follow_last=False)
        parent = posixpath.dirname(canonical) or "/"
        if not self.exists(parent):
            raise VfsError(errno.ENOENT, path)
        if not os.path.isdir(self._host(parent)):
            raise VfsError(errno.ENOTDIR, path)
        if not self.may(user, parent, 3):
            raise VfsError(errno.EACCES, path)
        if self.exists(canonical) and os.path.isfile(self._host(canonical)) and not self.may(user, canonical, 2):
            raise VfsError(errno.EACCES, path)

    def check_read(self, user: str, path: str, cwd: str = "/") -> None:
        if not self.exists(path, cwd):
            raise VfsError(errno.ENOENT, path)
        if not self.may(user, path, 4, cwd):
            raise VfsError(errno.EACCES, path)

    # --- changes --------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes, cwd: str = "/", append: bool = False,
                    mode: int = 0o644, user: str = "root") -> None:
        canonical = self.resolve(path, cwd)
        host = self._host(canonical)
        if os.path.isdir(host):
            raise VfsError(errno.EISDIR, path)
        if not os.path.isdir(os.path.dirname(host)):
            raise VfsError(errno.ENOENT, path)
        self._check_space(canonical, len(data) if append else len(data) - self._size(host))
        created = not os.path.exists(host)
        with open(host, "ab" if append else "wb") as handle:
            handle.write(data)
        if created:
            os.chmod(host, mode)
            self.set_owner(canonical, user, self._group_of(user))

    def write_text(self, path: str, text: str, **kwargs) -> None:
        self.write_bytes(path, text.encode("utf-8"), **kwargs)

    def mkdir(self, path: str, mode: int = 0o755, parents: bool = False, cwd: str = "/",
              user: str = "root") -> None:
        canonical = self.resolve(path, cwd)
        host = self._host(canonical)
        if os.path.isdir(host):
            if parents:
                return
            raise VfsError(errno.EEXIST, path)
        if os.path.lexists(host):
            raise VfsError(errno.EEXIST, path)
        parent = posixpath.dirname(canonical)
        if not os.path.isdir(self._host(parent)):
            if not parents:
                raise VfsError(errno.ENOENT, path)
            self.mkdir(parent, 0o755, parents=True, user=user)
        os.mkdir(host)
        os.chmod(host, mode)
        self.set_owner(canonical, user, self._group_of(user))

    def symlink(self, target: str, path: str, cwd: str = "/", user: str = "root") -> None:
        canonical = self.resolve(path, cwd, follow_last=False)
        host = self._host(canonical)
        if os.path.lexists(host):
            raise VfsError(errno.EEXIST, path)
        os.symlink(target, host)
        self.set_owner(canonical, user, self._group_of(user))

    def remove(self, path: str, cwd: str = "/", recursive: bool = False) -> None:
        canonical = self.resolve(path, cwd, follow_last=False)
        host = self._host(canonical)
        if not os.path.lexists(host):
            raise VfsError(errno.ENOENT, path)
        if os.path.isdir(host) and not os.path.islink(host):
            if not recursive:
                raise VfsError(errno.EISDIR, path)
            shutil.rmtree(host)
            for key in [k for k in self.owners if k == canonical or k.startswith(canonical + "/")]:
                del self.owners[key]
            return
        os.unlink(host)
        self.owners.pop(canonical, None)

    def rename(self, source: str, dest: str, cwd: str = "/") -> None:
        src = self.resolve(source, cwd, follow_last=False)
        dst = self.resolve(dest, cwd)
        if os.path.isdir(self._host(dst)):
            dst = posixpath.join(dst, posixpath.basename(src))
        if not os.path.lexists(self._host(src)):
            raise VfsError(errno.ENOENT, source)
        if self.mount_of(src) is not self.mount_of(dst):
            self._check_space(dst, self._size(self._host(src)))
        os.replace(self._host(src), self._host(dst))
        moved = {k: v for k, v in self.owners.items() if k == src or k.startswith(src + "/")}
        for key, value in moved.items():
            del self.owners[key]
            self.owners[dst + key[len(src):]] = value

    def copy(self, source: str, dest: str, cwd: str = "/", user: str = "root") -> None:
        src = self.resolve(source, cwd)
        dst = self.resolve(dest, cwd)
        if os.path.isdir(self._host(dst)):
            dst = posixpath.join(dst, posixpath.basename(src))
        if not os.path.isfile(self._host(src)):
            raise VfsError(errno.ENOENT if not os.path.exists(self._host(src)) else errno.EISDIR, source)
        self._check_space(dst, self._size(self._host(src)))
        created = not os.path.exists(self._host(dst))
        shutil.copyfile(self._host(src), self._host(dst))
        if created:
            os.chmod(self._host(dst), stat.S_IMODE(os.stat(self._host(src)).st_mode))
            self.set_owner(dst, user, self._group_of(user))

    def chmod(self, path: str, mode: int, cwd: str = "/") -> None:
        host = self.host_path(path, cwd)
        if not os.path.exists(host):
            raise VfsError(errno.ENOENT, path)
        os.chmod(host, mode)

    def set_owner(self, path: str, user: str, group: str | None = None, cwd: str = "/") -> None:
        canonical = path if path.startswith("/") and cwd == "/" else self.resolve(path, cwd)
        current = self.owners.get(canonical, ("root", "root"))
        self.owners[canonical] = (user or current[0], group or current[1])

    def _group_of(self, user: str) -> str:
        account = self.accounts.get(user)
        return account.group if account else user

    # --- mounts and space -------------------------------------------------

    def mount_of(self, canonical: str) -> Mount | None:
        best = None
        for mount in self.mounts:
            if canonical == mount.point or canonical.startswith(mount.point.rstrip("/") + "/"):
                if best is None or len(mount.point) > len(best.point):
                    best = mount
        return best

    def used_kib(self, mount: Mount) -> int:
        total = 0
        host_root = self._host(mount.point)
        inner = [m for m in self.mounts if m is not mount and m.point.startswith(mount.point.rstrip("/") + "/")]
        inner_hosts = {self._host(m.point) for m in inner}
        for dirpath, dirnames, filenames in os.walk(host_root):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in inner_hosts]
            for name in filenames:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    pass
        return (total + 1023) // 1024

    def free_bytes(self, path: str, cwd: str = "/") -> int:
        mount = self.mount_of(self.resolve(path, cwd))
        if mount is None:
            return 1 << 40
        return max(0, mount.size_kib - self.used_kib(mount)) * 1024

    def _check_space(self, canonical: str, growth: int) -> None:
        if growth <= 0:
            return
        mount = self.mount_of(canonical)
        if mount is not None and growth > (mount.size_kib - self.used_kib(mount)) * 1024:
            raise VfsError(errno.ENOSPC, canonical)

    @staticmethod
    def _size(host: str) -> int:
        try:
            return os.path.getsize(host)
        except OSError:
            return 0

    def wipe(self, point: str) -> None:
        """Empty a mount point (tmpfs at reboot), keeping the point itself."""
        canonical = self.resolve(point)
        host = self._host(canonical)
        if not os.path.isdir(host):
            return
        for name in os.listdir(host):
            child = posixpath.join(canonical, name)
            self.remove(child, recursive=True)
