# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check an mLinux upgrade image before it goes anywhere near a gateway.

The image is an uncompressed tar with a ``model`` member (``mtcdt``, ``mtcap``)
and, for each payload member (``uImage.bin``, ``rootfs.jffs2``, ...), a
``<member>.md5`` member holding ``<md5>  -``: the same checks the unit's
``mlinux-firmware-upgrade`` makes, done here first so that a bad file fails
with its name and the reason before any upload. Files are read in blocks, so a
256 MB image costs no more memory than a small one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import os
import re
import tarfile

PAYLOAD_MEMBERS = ("bstrap.bin", "uboot.bin", "uImage.bin", "config.jffs2", "oem.jffs2", "rootfs.jffs2")
BLOCK = 1024 * 1024


class ImageError(Exception):
    """The image cannot be used; ``message`` names the file and the reason."""

    def __init__(self, message):
        super(ImageError, self).__init__(message)
        self.message = message


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(checksum, image_path):
    """The sha256 to expect: a hex digest, or a checksum file (``sha256sum`` format) naming the image."""
    if not checksum:
        return None
    value = checksum.strip()
    if value.lower().startswith("sha256:"):
        value = value[7:]
    if re.match(r"^[0-9a-fA-F]{64}$", value):
        return value.lower()
    if re.match(r"^[0-9]+$", value):
        raise ImageError("checksum %r is not 64 hex digits: YAML reads an unquoted checksum of digits alone as a "
                         "number (its leading zeros lost); quote it" % checksum)
    if not os.path.isfile(value):
        raise ImageError("checksum %r is neither a sha256 hex digest (64 hex digits) nor a readable checksum file"
                         % checksum)
    wanted = os.path.basename(image_path)
    with open(value) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2 and re.match(r"^[0-9a-fA-F]{64}$", parts[0]) and \
                    os.path.basename(parts[-1].lstrip("*")) == wanted:
                return parts[0].lower()
    raise ImageError("checksum file %s has no sha256 line for %s" % (value, wanted))


class FirmwareImage:
    """An upgrade image on the controller (see module docstring)."""

    def __init__(self, path):
        self.path = path

    def check(self, model=None, sha256=None):
        """Verify the image; return what it is. Raises ImageError naming the file and the reason."""
        path = self.path
        if not os.path.exists(path):
            raise ImageError("%s: no such file" % path)
        if not os.path.isfile(path):
            raise ImageError("%s: not a regular file" % path)
        size = os.path.getsize(path)
        actual_sha256 = file_sha256(path)
        want_sha256 = expected_sha256(sha256, path)
        if want_sha256 and actual_sha256 != want_sha256:
            raise ImageError("%s: sha256 is %s, expected %s (a corrupt or different download)"
                             % (path, actual_sha256, want_sha256))
        try:
            archive = tarfile.open(path, "r:")
        except (tarfile.TarError, OSError) as exc:
            raise ImageError("%s: not an mLinux upgrade image (not a tar archive: %s)" % (path, exc))
        with archive:
            try:
                archive.getmembers()
            except (tarfile.TarError, OSError) as exc:
                raise ImageError("%s: truncated or damaged tar archive (%s); download it again" % (path, exc))
            members = dict((m.name, m) for m in archive.members)
            if "model" not in members:
                raise ImageError("%s: no 'model' member; not an mLinux upgrade image" % path)
            image_model = self._read_small(archive, members["model"]).strip().lower()
            if model and image_model != model.lower():
                raise ImageError("%s: image is for model %s, the unit is model %s" % (path, image_model, model.lower()))
            payload = [name for name in PAYLOAD_MEMBERS if name in members]
            if not payload:
                raise ImageError("%s: no firmware payload (none of %s)" % (path, ", ".join(PAYLOAD_MEMBERS)))
            checked = []
            for name in payload:
                if name + ".md5" not in members:
                    raise ImageError("%s: %s has no %s.md5 member" % (path, name, name))
                expected = self._read_small(archive, members[name + ".md5"]).split()
                actual = self._md5(archive, members[name], path)
                if not expected or expected[0].lower() != actual:
                    raise ImageError("%s: md5 of %s is %s, the image says %s; the file is corrupt"
                                     % (path, name, actual, expected[0] if expected else "nothing"))
                checked.append(name)
        return {"path": path, "size": size, "sha256": actual_sha256, "model": image_model, "members": checked}

    def _read_small(self, archive, member):
        handle = archive.extractfile(self._regular(member))
        return handle.read(4096).decode("ascii", "replace")

    def _regular(self, member):
        """``member`` when it is a file of its own: an upgrade image holds no links, folders or devices."""
        if not member.isfile():
            kind = "a link to %s" % member.linkname if member.issym() or member.islnk() else \
                "a folder" if member.isdir() else "a special file"
            raise ImageError("%s: its member %s is %s, not a file: not an mLinux upgrade image as MultiTech ships "
                             "them; download it again" % (self.path, member.name, kind))
        return member

    def _md5(self, archive, member, path):
        digest = hashlib.md5()  # nosec - the image format's own checksum
        handle = archive.extractfile(self._regular(member))
        try:
            for block in iter(lambda: handle.read(BLOCK), b""):
                digest.update(block)
        except (tarfile.TarError, OSError) as exc:
            raise ImageError("%s: %s is cut short (%s); the file is truncated" % (path, member.name, exc))
        return digest.hexdigest()
