# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take a factory AEP Conduit to "SSH enabled on the LAN", idempotently.

The device is read first and only what is not already right is changed. In
check mode nothing that changes state is sent (no commissioning POST, no PUT,
no save, no restart, and no ``revert`` either: it would throw away unsaved
settings that are not ours).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy

from ansible_collections.lorawan.conduit.plugins.module_utils._aep_api import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    MPowerAuthError,
    MPowerClient,
    MPowerCommissioningError,
    MPowerError,
    MPowerUnreachable,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._errors import StageError
from ansible_collections.lorawan.conduit.plugins.module_utils._ledger import ledger_argument_spec
from ansible_collections.lorawan.conduit.plugins.module_utils._net import (
    Deadline,
    peer_certificate_sha256,
    ssh_banner,
)
from ansible_collections.lorawan.conduit.plugins.module_utils._stage_module import Progress, StageModule

IDENTITY_FIELDS = (
    ("product_id", "productId"),
    ("serial", "deviceId"),
    ("mac", "macAddress"),
    ("lora_eui", "loraEui"),
    ("firmware", "firmware"),
    ("hardware_version", "hardwareVersion"),
    ("lora_product_id", "loraProductId"),
    ("lora_hw_version", "loraHwVersion"),
    ("uuid", "uuid"),
    ("imei", "imei"),
)


def identity_from_system(system):
    identity = {}
    for ours, theirs in IDENTITY_FIELDS:
        value = system.get(theirs)
        if value is None:
            continue
        identity[ours] = value.lower() if ours in ("mac", "lora_eui") and isinstance(value, str) else value
    product_id = identity.get("product_id") or ""
    identity["product_type"] = product_id.split("-", 1)[0].lower() if product_id else None
    return identity


class Commissioner:
    """The commissioning stage for one device (see module docstring)."""

    def __init__(self, params, check_mode=False, client=None, deadline_factory=Deadline, progress=None):
        self.params = params
        self.check_mode = check_mode
        self.progress = progress or Progress()
        self.label = params.get("name") or params["address"]
        self.client = client or MPowerClient(
            params["address"], params["https_port"], validate_certs=params["validate_certs"],
            ca_path=params.get("ca_path"), fingerprint=params.get("tls_fingerprint"),
            interface=params.get("bind_interface"), timeout=params["request_timeout"])
        self._deadline = deadline_factory
        self.actions = []
        self.result = {"changed": False, "commissioned": False, "rebooted": False, "ssh_changed": False,
                       "identity": {}, "tls_fingerprint": None, "actions": self.actions}

    def fail(self, stage, message, **context):
        where = "%s (%s)" % (self.label, self.client.describe())
        raise StageError("%s: %s: %s" % (where, stage, message), stage, **context)

    # --- steps -----------------------------------------------------------------

    def _wait_for_api(self):
        self.progress.set("waiting for the mPower API")
        """Wait until the device answers at all; a booting device is never 'commissioned'."""
        deadline = self._deadline(self.params["boot_timeout"])
        last = [None]

        def answered():
            try:
                return ("commissioned" if self.client.is_commissioned() else "uncommissioned")
            except MPowerUnreachable as exc:
                last[0] = exc.message
                return None
            except MPowerError as exc:  # an answer that waiting would not change (another certificate, ...)
                self.fail("connect", exc.message)
        state = deadline.wait_for(answered, interval=2.0)
        if state is None:
            self.fail("connect", "the mPower API did not answer within %d s (last error: %s); check the cable, "
                      "the address and that the unit has finished booting" % (self.params["boot_timeout"], last[0]))
        return state == "commissioned"

    def _read_certificate(self):
        try:
            return peer_certificate_sha256(self.client.address, self.client.port, self.params["request_timeout"],
                                           self.params.get("bind_interface"))
        except (OSError, ValueError):
            return None

    def _commission(self):
        username, password = self.params["username"], self.params["password"]
        self.actions.append("create admin user %s" % username)
        if self.check_mode:
            return
        try:
            self.client.commission(username, password)
        except MPowerCommissioningError as exc:
            self.fail("commission", "%s. The device stays in commissioning mode; choose a password the device "
                      "accepts (8 to 64 characters, three of: lower case, upper case, digits, symbols)" % exc.message)
        except MPowerError as exc:
            self.fail("commission", "commissioning failed: %s" % exc.message)
        self.result["commissioned"] = True
        self.result["changed"] = True

    def _login(self, just_commissioned):
        try:
            self.client.login(self.params["username"], self.params["password"])
        except MPowerAuthError as exc:
            hint = ("the password given is not this unit's admin password; if the unit was commissioned "
                    "before with another password, give that one or factory-reset it (hold RESET 30 s)")
            if just_commissioned:
                hint = "the device refused the password it was just given"
            self.fail("login", "login as %s refused (%s): %s" % (self.params["username"], exc.message, hint))
        except MPowerError as exc:
            self.fail("login", "login failed: %s" % exc.message)

    def _check_product(self, identity):
        product_id = identity.get("product_id") or ""
        want_type = (self.params.get("expected_product_type") or "").lower()
        want_id = (self.params.get("expected_product_id") or "").lower()
        # mPower shows the product only to a logged-in user, so a factory unit is commissioned before this check
        changed = "its admin user %s was created (mPower shows the product only after that), nothing else was " \
            "changed" % self.params["username"] if self.result["commissioned"] else "nothing was changed on it"
        if want_type and identity.get("product_type") != want_type:
            self.fail("check product", "this unit is a %s (%s), expected product type %s; %s"
                      % (identity.get("product_type"), product_id, want_type, changed), identity=identity)
        if want_id and product_id.lower() != want_id:
            self.fail("check product", "this unit is a %s, expected %s; %s"
                      % (product_id, self.params["expected_product_id"], changed), identity=identity)

    def _ssh_wanted(self):
        return {"enabled": True, "lan": True, "wan": False, "port": self.params["ssh_port"]}

    def _ssh_answers(self):
        return ssh_banner(self.client.address, self.params["ssh_port"], 3.0, self.params.get("bind_interface"))

    def _configure_ssh(self, remote_access):
        ssh = remote_access.get("ssh")
        if not isinstance(ssh, dict):
            self.fail("enable ssh", "remoteAccess has no ssh section; this firmware is not supported")
        wanted = self._ssh_wanted()
        current = dict((key, ssh.get(key)) for key in wanted)
        self.result["diff"] = {"before": {"ssh": current}, "after": {"ssh": wanted}}
        if current == wanted and self._ssh_answers():
            self.result["ssh"] = dict(wanted, answering=True)
            return False
        if current == wanted:
            self.actions.append("save and restart: SSH is configured but does not answer on port %d"
                                % wanted["port"])
        else:
            changed_keys = sorted(k for k in wanted if current.get(k) != wanted[k])
            self.actions.append("set ssh %s" % ", ".join("%s=%s" % (k, wanted[k]) for k in changed_keys))
        self.actions.extend(["save configuration", "restart"])
        self.result["changed"] = True
        self.result["ssh_changed"] = True
        self.result["ssh"] = dict(wanted, answering=False)
        if self.check_mode:
            return True
        body = copy.deepcopy(remote_access)
        body["ssh"].update(wanted)
        try:
            self.client.put("remoteAccess", body)
            self.client.command("save")
            self.client.command("restart")
        except MPowerError as exc:
            self.fail("enable ssh", "the device refused the change: %s" % exc.message)
        return True

    def _wait_after_restart(self):
        self.progress.set("restarting")
        self.result["rebooted"] = True
        if not self.params["wait"]:
            return
        timeout = self.params["reboot_timeout"]
        going_down = self._deadline(min(60.0, float(timeout)))

        def api_gone():
            try:
                self.client.is_commissioned()
                return False
            except MPowerUnreachable:
                return True
            except MPowerError:
                return False
        if not going_down.wait_for(api_gone, interval=0.5):
            self.fail("restart", "the unit accepted the restart but kept answering for %d s; it did not reboot"
                      % going_down.seconds)
        coming_up = self._deadline(timeout)
        banner = coming_up.wait_for(self._ssh_answers, interval=1.0)
        if not banner:
            self.fail("wait for ssh", "SSH did not answer on port %d within %d s after the restart; the unit may "
                      "still be booting (raise reboot_timeout) or SSH is blocked on the LAN"
                      % (self.params["ssh_port"], timeout))
        self.result["ssh"]["answering"] = True
        self.result["ssh_banner"] = banner

    # --- the stage ------------------------------------------------------------------

    def run(self):
        commissioned = self._wait_for_api()
        self.result["tls_fingerprint"] = self._read_certificate()
        if not commissioned:
            self._commission()
            if self.check_mode:
                self.actions.extend(["log in", "check product", "enable SSH on the LAN (port %d)"
                                     % self.params["ssh_port"], "save configuration", "restart", "wait for SSH"])
                self.result["changed"] = True
                self.result["ssh"] = dict(self._ssh_wanted(), answering=False)
                return self.result
        self._login(just_commissioned=self.result["commissioned"])
        try:
            system = self.client.get("system")
            remote_access = self.client.get("remoteAccess")
        except MPowerError as exc:
            self.fail("read", "reading the device failed: %s" % exc.message)
        identity = identity_from_system(system if isinstance(system, dict) else {})
        self.result["identity"] = identity
        self._check_product(identity)
        if isinstance(system, dict) and system.get("dbDirty") and not self.check_mode:
            self.result.setdefault("warnings", []).append(
                "%s had unsaved settings before this run; saving SSH saves them too" % self.label)
        restarted = self._configure_ssh(remote_access if isinstance(remote_access, dict) else {})
        if restarted and not self.check_mode:
            self.client.token = None
            self._wait_after_restart()
        else:
            self.client.logout()
        return self.result


AEP_COMMISSION = StageModule(
    Commissioner,
    dict(
        name=dict(type="str"),
        address=dict(type="str", required=True),
        https_port=dict(type="int", default=443),
        bind_interface=dict(type="str"),
        validate_certs=dict(type="bool", default=False),
        ca_path=dict(type="path"),
        tls_fingerprint=dict(type="str"),
        request_timeout=dict(type="float", default=10),
        username=dict(type="str", default="mtadm"),
        password=dict(type="str", required=True, no_log=True),
        expected_product_type=dict(type="str"),
        expected_product_id=dict(type="str"),
        ssh_port=dict(type="int", default=22),
        wait=dict(type="bool", default=True),
        boot_timeout=dict(type="int", default=300),
        reboot_timeout=dict(type="int", default=600),
        **ledger_argument_spec()
    ),
    requirements=[("requests", HAS_REQUESTS, REQUESTS_IMPORT_ERROR)],
    batch=True,
    ledger_stage="commission",
)
