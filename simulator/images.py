"""Builds mLinux upgrade images for tests: valid ones and each kind of broken one.

The layout is the one the device's ``mlinux-firmware-upgrade`` checks
(conduit-protocol.md §4): an uncompressed tar with a ``model`` member and, per
payload member (``uImage.bin``, ``rootfs.jffs2``), a ``<member>.md5`` member
holding ``<md5>  -``. The simulated rootfs payload starts with a header naming
the mLinux version the device will run after the flash; the rest is
pseudo-random (incompressible, so transfer figures are honest) and the same
for the same arguments.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
from dataclasses import dataclass

ROOTFS_MAGIC = b"LWC-SIMULATED-ROOTFS\n"
DEFECTS = ("wrong-model", "bad-md5", "truncated", "not-tar", "missing-model", "model-symlink", "md5-hardlink")
KERNEL_SIZE = 256 * 1024


@dataclass
class ImageInfo:
    path: str
    model: str
    version: str
    size: int
    sha256: str
    defect: str | None


def parse_size(text: str) -> int:
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    text = text.strip().lower().rstrip("b")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _payload(seed: str, size: int, header: bytes = b""):
    """Yield ``size`` bytes: ``header`` then a seeded pseudo-random stream."""
    rng = random.Random(seed)
    yield header[:size]
    remaining = size - min(len(header), size)
    while remaining > 0:
        chunk = min(remaining, 1 << 20)
        yield rng.randbytes(chunk)
        remaining -= chunk


def rootfs_header(version: str) -> bytes:
    return ROOTFS_MAGIC + f"mlinux-version: {version}\n".encode()


def read_rootfs_version(data_head: bytes) -> str | None:
    """The version a simulated rootfs payload carries, or None."""
    if not data_head.startswith(ROOTFS_MAGIC):
        return None
    line = data_head[len(ROOTFS_MAGIC):].split(b"\n", 1)[0].decode("ascii", "replace")
    return line.split(":", 1)[1].strip() if line.startswith("mlinux-version:") else None


class _Streamed(io.RawIOBase):
    """A file-like object over a generator, so tarfile never holds a payload in memory."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def build_image(path: str, model: str = "mtcdt", size: int = 4 * 1024 * 1024, version: str = "5.3.31",
                defect: str | None = None) -> ImageInfo:
    """Write an upgrade image of about ``size`` bytes to ``path``; return what it is."""
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; choose one of {', '.join(DEFECTS)}")
    if defect == "not-tar":
        with open(path, "wb") as handle:
            for chunk in _payload(f"not-tar/{size}", size):
                handle.write(chunk)
        return _info(path, model, version, defect)
    tar_overhead = 5 * 1024
    rootfs_size = max(size - KERNEL_SIZE - tar_overhead, 4096)
    members = [
        ("uImage.bin", KERNEL_SIZE, b"", f"kernel/{model}/{version}"),
        ("rootfs.jffs2", rootfs_size, rootfs_header(version), f"rootfs/{model}/{version}/{size}"),
    ]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        if defect == "model-symlink":  # a link to a file that is not in the image
            link = tarfile.TarInfo("model")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/hostname"
            archive.addfile(link)
        elif defect != "missing-model":
            label = ("mtcap" if model != "mtcap" else "mtcdt") if defect == "wrong-model" else model
            _add_bytes(archive, "model", f"{label}\n".encode())
        for name, member_size, header, seed in members:
            digest = hashlib.md5()
            for chunk in _payload(seed, member_size, header):
                digest.update(chunk)
            md5 = digest.hexdigest()
            if defect == "bad-md5" and name == "rootfs.jffs2":
                md5 = ("0" if md5[0] != "0" else "1") + md5[1:]
            if defect == "md5-hardlink" and name == "rootfs.jffs2":  # the checksum is another member's
                link = tarfile.TarInfo(f"{name}.md5")
                link.type, link.linkname = tarfile.LNKTYPE, "uImage.bin.md5"
                archive.addfile(link)
            else:
                _add_bytes(archive, f"{name}.md5", f"{md5}  -\n".encode())
            info = tarfile.TarInfo(name)
            info.size = member_size
            info.mode = 0o644
            archive.addfile(info, io.BufferedReader(_Streamed(_payload(seed, member_size, header)), 1 << 20))
    if defect == "truncated":
        full = os.path.getsize(path)
        with open(path, "r+b") as handle:
            handle.truncate(full // 2)
    return _info(path, model, version, defect)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _info(path: str, model: str, version: str, defect: str | None) -> ImageInfo:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return ImageInfo(path=path, model=model, version=version, size=os.path.getsize(path),
                     sha256=digest.hexdigest(), defect=defect)
