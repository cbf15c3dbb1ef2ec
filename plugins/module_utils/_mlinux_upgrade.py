# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flash mLinux onto a Conduit and wait until the new system runs.

Order matters: the image is checked on the controller before anything is
sent, free space is checked before the upload, the upload is verified by
sha256 before the flash is triggered, and the run ends only when the unit
answers as mLinux with the expected version. A unit already on that version
is left alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import posixpath
import re
import shlex
import time

from ansible_collections.lorawan.conduit.plugins.module_utils._device_ssh import (
    PARAMIKO_REQUIREMENT,
    device_ssh_argument_spec,
    DeviceAuthError,
    DeviceSession,
    DeviceSSHError,
    DeviceUnreachable,
    SessionLost,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._firmware_image import FirmwareImage, ImageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import ledger_argument_spec
from ansible_collections.lorawan.conduit.plugins.module_utils._net import Deadline, ssh_banner
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import Progress, StageModule

UPGRADE_COMMAND = "/usr/sbin/mlinux-firmware-upgrade"
UMOUNTFS = "/etc/init.d/umountfs"
CELLULAR_CHECK = "mts_fw_check_hw_support"
# On a unit with a radio, umountfs cancels the staged flash when this check fails. The line a real unit has is
#     if ! mts_fw_check_hw_support_mp "$mpower_version" "$hw_version"; then
# and the runbook's fix turns it into `if false ; then # <the line as it was>`, so the original stays readable.
ACTIVE_CHECK = re.compile(r"^\s*if\s+!?\s*%s\w*\b" % CELLULAR_CHECK)
DISABLED_PREFIX = "if false ; then # "
DISABLE_CHECK = ("sed -i -e '/^[[:space:]]*if[[:space:]]*!*[[:space:]]*%s/s/if.*/%s&/' %s"
                 % (CELLULAR_CHECK, DISABLED_PREFIX, UMOUNTFS))
MARGIN_BYTES = 1024 * 1024


def parse_version(text):
    """``mLinux 5.3.31`` (first line of /etc/mlinux-version) → ``5.3.31``; None when absent."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    match = re.match(r"^mLinux\s+(\S+)", first)
    return match.group(1) if match else None


def parse_df_available(text):
    """Available bytes from ``df -k PATH`` (busybox or coreutils layout)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = " ".join(lines[1:]).split()
    try:
        return int(fields[3]) * 1024
    except (IndexError, ValueError):
        return None


class Upgrader:
    """The upgrade stage for one unit (see module docstring)."""

    def __init__(self, params, check_mode=False, session_factory=DeviceSession, deadline_factory=Deadline,
                 clock=time.monotonic, progress=None):
        self.params = params
        self.check_mode = check_mode
        self.progress = progress or Progress()
        self.label = params.get("name") or params["address"]
        self._session_factory = session_factory
        self._deadline = deadline_factory
        self._clock = clock
        self.started = clock()
        self.actions = []
        self.result = {"changed": False, "actions": self.actions, "flashed": False}

    def fail(self, stage, message, **context):
        raise StageError("%s: %s: %s" % (self.label, stage, message), stage, **context)

    # --- sessions ----------------------------------------------------------------

    def _session(self, before_flash):
        p = self.params
        if before_flash:
            return self._session_factory(
                p["address"], p["port"], p["username"], password=p.get("password"), key_filename=p.get("key_file"),
                allow_agent=p["allow_agent"], look_for_keys=p["look_for_keys"], host_key=p.get("host_key"),
                host_key_policy=p["host_key_policy"], timeout=p["connect_timeout"],
                interface=p.get("bind_interface"), label=self.label)
        # After a flash the unit has new host keys: the next stage pins what we return.
        return self._session_factory(
            self._mlinux_address(), p["mlinux_port"], p["mlinux_username"], password=p.get("mlinux_password"),
            key_filename=p.get("mlinux_key_file"), allow_agent=p["allow_agent"], look_for_keys=p["look_for_keys"],
            host_key=None, host_key_policy=p["host_key_policy"], timeout=p["connect_timeout"],
            interface=p.get("mlinux_bind_interface") or p.get("bind_interface"), label=self.label)

    def _mlinux_address(self):
        return self.params.get("mlinux_address") or self.params["address"]

    def _connect_any(self):
        """Connect as the pre-flash user, or (a re-run after the flash) as the mLinux user."""
        errors = []
        for before_flash in (True, False):
            if not before_flash and not (self.params.get("mlinux_password") or self.params.get("mlinux_key_file")):
                continue
            session = self._session(before_flash)
            try:
                return session.connect(), before_flash
            except DeviceAuthError as exc:
                errors.append(exc.message)
            except DeviceUnreachable as exc:
                errors.append(exc.message)
            except DeviceSSHError as exc:
                self.fail("connect", exc.message)
        self.fail("connect", "; ".join(errors))

    # --- steps ------------------------------------------------------------------------

    def _image_path(self, product_type):
        path = self.params["image"]
        if "{product_type}" in path:
            if not product_type:
                return None
            path = path.replace("{product_type}", product_type)
        return path

    def _check_image(self, product_type):
        path = self._image_path(product_type)
        try:
            info = FirmwareImage(path).check(model=product_type, sha256=self.params.get("image_checksum"))
        except ImageError as exc:
            self.fail("check image", "%s; nothing was sent to the unit" % exc.message)
        self.result["image"] = info
        return info

    def _product_type(self, session):
        given = self.params.get("product_type")
        if given:
            return given.lower()
        product_id = session.run("mts-io-sysfs show product-id").stdout.strip()
        if not product_id:
            hw_version = session.run("mts-io-sysfs show hw-version").stdout.strip()
            product_id = hw_version
        return product_id.split("-", 1)[0].lower() if product_id else None

    def _check_space(self, session, image):
        directory = posixpath.dirname(self.params["remote_path"]) or "/"
        df = session.run("df -k %s" % shlex.quote(directory))
        available = parse_df_available(df.stdout)
        if available is None:
            self.fail("check space", "could not read the free space of %s on the unit: df -k gave %s, output %r%s; "
                      "nothing was sent to the unit" % (
                          directory, "no exit status" if df.status is None else "status %d" % df.status,
                          df.stdout[-200:], ", error %r" % df.stderr[-200:] if df.stderr.strip() else ""))
        needed = image["size"] + MARGIN_BYTES
        existing = session.remote_size(self.params["remote_path"]) or 0
        if available + existing < needed:
            free = (available + existing) / 1e6
            self.fail("check space", "%s needs %.1f MB in %s, the unit has %.1f MB free; reboot the unit to clear "
                      "its tmpfs or use a smaller image" % (os.path.basename(image["path"]), needed / 1e6, directory, free))
        self.result["free_bytes"] = available

    def _cellular_fix(self, session):
        """Disable umountfs's hardware check on a unit with a radio, as the runbook does, and prove it is off."""
        if not self.params["cellular_fix"]:
            return
        if session.run("mts-io-sysfs show has-radio").stdout.strip() != "1":
            return
        before = session.run("cat %s" % UMOUNTFS).stdout.splitlines()
        active = []
        for number, line in enumerate(before, 1):
            code = line.strip()
            if CELLULAR_CHECK not in code or code.startswith("#") or code.startswith(DISABLED_PREFIX):
                continue
            if not ACTIVE_CHECK.match(line):
                self.fail("cellular fix", "%s line %d calls the hardware check in a form this module does not know: "
                          "%r; nothing was changed. Disable that check by hand (see the module notes) or set "
                          "cellular_fix: false" % (UMOUNTFS, number, line))
            active.append((number, line))
        fixes = [{"line": number, "before": line, "after": self._disabled(line)} for number, line in active]
        self.result["cellular_fix"] = fixes
        for fix in fixes:
            self.actions.append("disable the hardware check in %s line %d: %r becomes %r (cellular unit)"
                                % (UMOUNTFS, fix["line"], fix["before"], fix["after"]))
        if not fixes or self.check_mode:
            return
        session.check(DISABLE_CHECK, sudo=True)
        after = session.run("cat %s" % UMOUNTFS).stdout.splitlines()
        expected = list(before)
        for fix in fixes:
            expected[fix["line"] - 1] = fix["after"]
        if after != expected:
            self.fail("cellular fix", "%s is not as planned after the edit; the flash was not started. Compare it with "
                      "the lines planned: %s" % (UMOUNTFS, "; ".join("line %d %r" % (f["line"], f["after"]) for f in fixes)))

    @staticmethod
    def _disabled(line):
        indent = line[:len(line) - len(line.lstrip())]
        return indent + DISABLED_PREFIX + line[len(indent):]

    def _upload(self, session, image):
        remote = self.params["remote_path"]
        began = self._clock()

        def uploading(sent, size):
            self.progress.set("uploading", "%d of %d MB, %.1f MB/s" % (
                sent // 1000000, size // 1000000, sent / max(self._clock() - began, 1e-6) / 1e6))
        try:
            attempts = session.upload(image["path"], remote, progress=uploading, retries=self.params["upload_retries"])
        except SessionLost as exc:
            self.fail("upload", "%s; nothing was flashed: run again once the unit answers"
                      % exc.reason(self.label))
        seconds = max(self._clock() - began, 1e-6)
        remote_sha = session.sha256(remote)
        if remote_sha != image["sha256"]:
            session.run("rm -f %s" % shlex.quote(remote))
            self.fail("verify upload", "sha256 on the unit is %s, expected %s; the upload was removed"
                      % (remote_sha, image["sha256"]))
        self.result["upload"] = {"seconds": round(seconds, 3), "bytes": image["size"],
                                 "mb_per_s": round(image["size"] / seconds / 1e6, 2), "attempts": attempts}

    def _trigger(self, session):
        remote = self.params["remote_path"]
        try:
            result = session.sudo("%s %s" % (UPGRADE_COMMAND, shlex.quote(remote)), timeout=300)
        except SessionLost:
            return  # the reboot cut the session, as expected
        output = (result.stdout + result.stderr).strip()
        if "Rebooting" in output or result.status is None:
            return
        reason = [line for line in output.splitlines() if line.strip()]
        self.fail("flash", "mlinux-firmware-upgrade refused the image (status %s): %s" % (
            result.status, " / ".join(reason[-3:]) or "no output"))

    def _wait_down(self):
        self.progress.set("flashing")
        deadline = self._deadline(self.params["down_timeout"])
        p = self.params
        gone = deadline.wait_for(lambda: not ssh_banner(p["address"], p["port"], 2.0, p.get("bind_interface")),
                                 interval=0.5)
        if not gone:
            self.fail("flash", "the unit kept answering SSH for %d s after the upgrade was started; it did not "
                      "reboot" % p["down_timeout"])

    def _wait_mlinux(self):
        self.progress.set("rebooting into mLinux")
        timeout = self.params["flash_timeout"]
        deadline = self._deadline(timeout)
        last = ["no SSH answer at %s:%d" % (self._mlinux_address(), self.params["mlinux_port"])]

        def answered():
            session = self._session(before_flash=False)
            try:
                session.connect()
            except DeviceAuthError as exc:
                last[0] = "SSH answers but login refused (%s)" % exc.message
                return None
            except DeviceSSHError as exc:
                last[0] = exc.message
                return None
            try:
                text = session.run("cat /etc/mlinux-version").stdout
            except DeviceSSHError as exc:
                last[0] = exc.message
                session.close()
                return None
            version = parse_version(text)
            if version is None:
                last[0] = "SSH answers but /etc/mlinux-version is missing (still the old firmware?)"
                session.close()
                return None
            return session, version
        found = deadline.wait_for(answered, interval=2.0)
        if not found:
            self.fail("wait for mlinux", "flash did not complete within %d s; last seen: %s" % (timeout, last[0]))
        return found

    # --- the stage ------------------------------------------------------------------------

    def run(self):
        p = self.params
        early_type = p.get("product_type")
        image = None
        if "{product_type}" not in p["image"] or early_type:
            image = self._check_image(early_type.lower() if early_type else None)
        session, before_flash = self._connect_any()
        try:
            current = parse_version(session.run("cat /etc/mlinux-version").stdout)
            self.result["old_version"] = current
            self.result["host_key"] = session.host_key_seen
            if current == p["expected_version"]:
                self.result["new_version"] = current
                self.result["address"] = session.address
                if image is None:
                    self.result["image"] = None
                return self._finish()
            if not before_flash:
                self.fail("check version", "the unit runs mLinux %s, expected %s; flash it from mLinux with the "
                          "pre-flash credentials, or set expected_version" % (current, p["expected_version"]))
            product_type = self._product_type(session)
            if image is None:
                image = self._check_image(product_type)
            if image["model"] != product_type:
                self.fail("check image", "%s: image is for model %s, the unit is model %s; nothing was sent to the unit"
                          % (image["path"], image["model"], product_type))
            self._check_space(session, image)
            self._cellular_fix(session)
            upload = "upload %s (%d bytes) to %s" % (os.path.basename(image["path"]), image["size"], p["remote_path"])
            self.actions.extend([upload, "verify sha256", "run mlinux-firmware-upgrade",
                                 "wait for mLinux %s" % p["expected_version"]])
            self.result["changed"] = True
            if self.check_mode:
                return self._finish()
            self._upload(session, image)
            self._trigger(session)
        finally:
            session.close()
        self.result["flashed"] = True
        self._wait_down()
        new_session, version = self._wait_mlinux()
        try:
            self.result["host_key"] = new_session.host_key_seen
            self.result["address"] = new_session.address
        finally:
            new_session.close()
        self.result["new_version"] = version
        if version != p["expected_version"]:
            self.fail("verify version", "the unit runs mLinux %s after the flash, expected %s; check that %s is "
                      "the image for that version" % (version, p["expected_version"], image["path"]),
                      new_version=version)
        return self._finish()

    def _finish(self):
        self.result["elapsed"] = round(self._clock() - self.started, 3)
        return self.result


def _mlinux_upgrade_options():
    # the connection options are those of every device module; here they reach the unit before the flash. Not the
    # jumphost's: the flash is watched where the unit answers (its SSH banner going away and coming back), and
    # through a tunnel that the reboot ends and the unit dials again that is another wait
    spec = dict((name, option) for name, option in device_ssh_argument_spec().items()
                if not name.startswith("jump_"))
    spec.update(
        name=dict(type="str"),
        host_key=dict(type="str", no_log=False),
        host_key_policy=dict(type="str", choices=["pin", "ignore"], default="pin"),
        image=dict(type="path", required=True),
        image_checksum=dict(type="str"),
        product_type=dict(type="str"),
        expected_version=dict(type="str", required=True),
        remote_path=dict(type="str", default="/tmp/firmware.bin"),
        cellular_fix=dict(type="bool", default=True),
        mlinux_address=dict(type="str"),
        mlinux_port=dict(type="int", default=22),
        mlinux_bind_interface=dict(type="str"),
        mlinux_username=dict(type="str", default="mtadm"),
        mlinux_password=dict(type="str", no_log=True),
        mlinux_key_file=dict(type="path"),
        upload_retries=dict(type="int", default=3),
        down_timeout=dict(type="int", default=120),
        flash_timeout=dict(type="int", default=900),
    )
    spec.update(ledger_argument_spec())
    return spec


MLINUX_UPGRADE = StageModule(Upgrader, _mlinux_upgrade_options(), requirements=[PARAMIKO_REQUIREMENT], batch=True,
                             ledger_stage="upgrade", required_one_of=[("password", "key_file")])
