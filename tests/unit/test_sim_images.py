"""The upgrade-image builder: valid images verify, each defect is what it says."""

from __future__ import annotations

import hashlib
import tarfile

import pytest

from simulator.images import build_image, read_rootfs_version


def members(path):
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def test_valid_image(tmp_path):
    info = build_image(str(tmp_path / "i.bin"), model="mtcap", size=1024 * 1024, version="5.3.31")
    content = members(info.path)
    assert content["model"] == b"mtcap\n"
    for name in ("uImage.bin", "rootfs.jffs2"):
        assert content[f"{name}.md5"].decode().split()[0] == hashlib.md5(content[name]).hexdigest()
    assert read_rootfs_version(content["rootfs.jffs2"][:200]) == "5.3.31"
    assert abs(info.size - 1024 * 1024) < 32 * 1024
    assert info.sha256 == hashlib.sha256(open(info.path, "rb").read()).hexdigest()
    again = build_image(str(tmp_path / "j.bin"), model="mtcap", size=1024 * 1024, version="5.3.31")
    assert again.sha256 == info.sha256, "same arguments, same image"


def test_defects(tmp_path):
    wrong = members(build_image(str(tmp_path / "w"), model="mtcdt", size=300000, defect="wrong-model").path)
    assert wrong["model"] == b"mtcap\n"
    bad = members(build_image(str(tmp_path / "b"), size=300000, defect="bad-md5").path)
    assert bad["rootfs.jffs2.md5"].decode().split()[0] != hashlib.md5(bad["rootfs.jffs2"]).hexdigest()
    assert "model" not in members(build_image(str(tmp_path / "m"), size=300000, defect="missing-model").path)
    with pytest.raises(tarfile.ReadError):
        members(build_image(str(tmp_path / "t"), size=300000, defect="not-tar").path)
    with pytest.raises((tarfile.ReadError, OSError)):
        members(build_image(str(tmp_path / "r"), size=600000, defect="truncated").path)
