"""Image checks on the controller (plugins/module_utils/_firmware_image.py)."""

from __future__ import annotations

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._firmware_image import (
    FirmwareImage,
    ImageError,
    expected_sha256,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._mlinux_upgrade import parse_df_available, parse_version
from simulator.images import build_image


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return build_image(str(tmp_path_factory.mktemp("img") / "good.bin"), model="mtcap", size=512 * 1024)


def test_good_image(good):
    info = FirmwareImage(good.path).check(model="MTCAP", sha256=good.sha256.upper())
    assert info == {"path": good.path, "size": good.size, "sha256": good.sha256, "model": "mtcap",
                    "members": ["uImage.bin", "rootfs.jffs2"]}


def test_checksum_file_forms(good, tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'1' * 64}  other.bin\n{good.sha256} *good.bin\n")
    assert expected_sha256(str(sums), good.path) == good.sha256
    assert expected_sha256("sha256:" + good.sha256, good.path) == good.sha256
    sums.write_text(f"{'1' * 64}  other.bin\n")
    with pytest.raises(ImageError, match="has no sha256 line for good.bin"):
        expected_sha256(str(sums), good.path)
    with pytest.raises(ImageError, match="neither a sha256 hex digest .* nor a readable checksum file"):
        expected_sha256("deadbeef", good.path)
    for number in ("0", "1234"):  # what YAML made of an unquoted checksum of digits: no check is skipped
        with pytest.raises(ImageError, match="YAML reads an unquoted checksum of digits alone as a number"):
            expected_sha256(number, good.path)


@pytest.mark.parametrize("defect, reason", [
    ("wrong-model", "image is for model mtcdt, the unit is model mtcap"),
    ("bad-md5", "md5 of rootfs.jffs2 is"),
    ("truncated", "truncated"),
    ("not-tar", "not a tar archive"),
    ("missing-model", "no 'model' member"),
    ("model-symlink", "its member model is a link to /etc/hostname, not a file"),
    ("md5-hardlink", "its member rootfs.jffs2.md5 is a link to uImage.bin.md5, not a file"),
])
def test_each_defect_names_file_and_reason(tmp_path, defect, reason):
    image = build_image(str(tmp_path / f"{defect}.bin"), model="mtcap", size=300 * 1024, defect=defect)
    with pytest.raises(ImageError) as caught:
        FirmwareImage(image.path).check(model="mtcap")
    assert caught.value.message.startswith(image.path)
    assert reason in caught.value.message


def test_sha256_mismatch_and_missing_file(good, tmp_path):
    with pytest.raises(ImageError, match="sha256 is .*, expected 0{64}"):
        FirmwareImage(good.path).check(sha256="0" * 64)
    with pytest.raises(ImageError, match="no such file"):
        FirmwareImage(str(tmp_path / "nope.bin")).check()


def test_version_and_df_parsing():
    assert parse_version("mLinux 5.3.31\nBuilt from branch: x\n") == "5.3.31"
    assert parse_version("") is None and parse_version("mPower 5.3.8") is None
    busybox = "Filesystem           1K-blocks      Used Available Use% Mounted on\ntmpfs 131072 12 131060 0% /var/volatile\n"
    wrapped = "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/very/long/name\n  131072 12 131060 0% /x\n"
    assert parse_df_available(busybox) == 131060 * 1024
    assert parse_df_available(wrapped) == 131060 * 1024
    assert parse_df_available("garbage") is None
