# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client for the mPower (AEP) HTTPS API of a MultiTech Conduit.

Usable without Ansible. Every request URL-encodes its parameters (passwords
with ``#``, ``&`` or ``+`` reach the device intact), passes ``verify`` itself
(the environment's ``REQUESTS_CA_BUNDLE`` must not silently turn checking on or
off) and reads the device's envelope: ``{"code", "status", "result"}`` on
success, ``{"code", "status": "fail", "error"}`` on failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re
import ssl
import traceback

from ansible_collections.lorawan.conduit.plugins.module_utils._net import (
    interface_socket_options,
    normalize_fingerprint,
)

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection
    from urllib3.exceptions import InsecureRequestWarning
    import urllib3
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    HTTPAdapter = object  # pylint: disable=invalid-name
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

COMMISSIONING_FINISHED = "commissioning is finished"


class MPowerError(Exception):
    """The device answered with an error envelope (or something that is not one)."""

    def __init__(self, message, code=None, path=None):
        super(MPowerError, self).__init__(message)
        self.message = message
        self.code = code
        self.path = path


class MPowerUnreachable(MPowerError):
    """No HTTP answer at all: connection refused, timeout, TLS failure."""


class MPowerAuthError(MPowerError):
    """Login refused or token rejected."""


class MPowerCommissioningError(MPowerError):
    """The commissioning dialogue refused an answer (e.g. the password rules)."""


_UNVERIFIED_CONTEXT = []


def _unverified_context():
    """One TLS client context per process for the connections checked by fingerprint or not at all.

    Without a context of its own urllib3 makes one per connection and loads the system's CA bundle into it
    (~20 ms of CPU each time), for a connection that never looks at a CA: a commissioning makes several
    connections (the unit reboots in between), and a bench of thirty makes them all at once."""
    if not _UNVERIFIED_CONTEXT:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _UNVERIFIED_CONTEXT.append(context)
    return _UNVERIFIED_CONTEXT[0]


class _BoundAdapter(HTTPAdapter):
    """Connections bound to one NIC, optionally pinned to one certificate."""

    def __init__(self, interface=None, fingerprint=None, verify=False):
        self._interface = interface
        self._fingerprint = fingerprint
        self._verify = verify
        super(_BoundAdapter, self).__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        if self._interface:
            kwargs["socket_options"] = HTTPConnection.default_socket_options + \
                interface_socket_options(self._interface)
        if self._fingerprint:
            kwargs["assert_fingerprint"] = self._fingerprint
        if not self._verify:
            kwargs["ssl_context"] = _unverified_context()
        super(_BoundAdapter, self).init_poolmanager(*args, **kwargs)


class MPowerClient:
    """One device's API. ``validate_certs`` may be a bool or a CA bundle path."""

    def __init__(self, address, port=443, validate_certs=False, ca_path=None, fingerprint=None,
                 interface=None, timeout=10.0):
        if not HAS_REQUESTS:
            raise MPowerError("the Python library requests is required")
        self.address = address
        self.port = port
        self.timeout = timeout
        self.base = "https://%s:%d/api/" % (address if ":" not in address else "[%s]" % address, port)
        self.verify = ca_path if (validate_certs and ca_path) else bool(validate_certs)
        self.fingerprint = normalize_fingerprint(fingerprint)
        self.token = None
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies, no CA bundle from the environment
        self.session.mount("https://", _BoundAdapter(interface, self.fingerprint, bool(self.verify)))
        if not self.verify:
            urllib3.disable_warnings(InsecureRequestWarning)

    def describe(self):
        return "%s:%d" % (self.address, self.port)

    # --- transport ------------------------------------------------------------

    def _request(self, method, path, params=None, json_body=None, auth=True):
        query = dict(params or {})
        if auth and self.token:
            query["token"] = self.token
        try:
            response = self.session.request(method, self.base + path, params=query or None, json=json_body,
                                            verify=self.verify, timeout=self.timeout, allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            if self.fingerprint and "fingerprint" in str(exc).lower():
                # not a unit still starting: another certificate answers, so waiting would change nothing
                raise MPowerError("its TLS certificate is not the pinned one (tls_fingerprint): another device "
                                  "answers at this address, or the unit was reset to the factory; nothing was sent "
                                  "to it", path=path)
            raise MPowerUnreachable("TLS error: %s" % _short(exc), path=path)
        except requests.exceptions.RequestException as exc:
            raise MPowerUnreachable("no answer: %s" % _short(exc), path=path)
        try:
            body = response.json()
        except ValueError:
            raise MPowerError("HTTP %d with a body that is not JSON" % response.status_code,
                              code=response.status_code, path=path)
        if not isinstance(body, dict):
            raise MPowerError("HTTP %d with an unexpected JSON body" % response.status_code,
                              code=response.status_code, path=path)
        if response.status_code >= 400 or body.get("status") == "fail":
            message = str(body.get("error") or "HTTP %d" % response.status_code)
            error = MPowerAuthError if response.status_code in (401, 403) else MPowerError
            raise error(message, code=body.get("code", response.status_code), path=path)
        return body.get("result")

    # --- commissioning ------------------------------------------------------------

    def is_commissioned(self):
        """True once the admin user exists; False in commissioning mode.

        Only the device saying so counts: a device that does not answer raises
        MPowerUnreachable, never reads as commissioned.
        """
        try:
            result = self._request("GET", "commissioning", auth=False)
        except MPowerUnreachable:
            raise
        except MPowerError as exc:
            if exc.code == 400 and COMMISSIONING_FINISHED in exc.message.lower():
                return True
            raise
        if isinstance(result, dict) and isinstance(result.get("commissioned"), bool):
            return result["commissioned"]
        return False

    def commission(self, username, password):
        """The three-step dialogue: name the user, give the password, confirm it."""
        steps = (("user name", ""), ("password", password), ("confirmation", password))
        aas_id = ""
        for label, answer in steps:
            result = self._request("POST", "commissioning", auth=False,
                                   json_body={"username": username, "aasID": aas_id, "aasAnswer": answer})
            result = result if isinstance(result, dict) else {}
            if result.get("aasType") == "error":
                raise MPowerCommissioningError("device refused the %s: %s" % (label, result.get("aasMsg") or
                                                                              "no reason given"), path="commissioning")
            aas_id = result.get("aasID") or aas_id
            if not aas_id:
                raise MPowerError("commissioning answered without an aasID", path="commissioning")

    # --- session -------------------------------------------------------------------

    def login(self, username, password):
        result = self._request("GET", "login", params={"username": username, "password": password}, auth=False)
        token = result.get("token") if isinstance(result, dict) else None
        if not token:
            raise MPowerAuthError("login answered without a token", path="login")
        self.token = token
        return token

    def logout(self):
        if self.token:
            try:
                self._request("POST", "logout")
            except MPowerError:
                pass
            self.token = None

    def get(self, path):
        return self._request("GET", path)

    def put(self, path, body):
        return self._request("PUT", path, json_body=body)

    def command(self, name):
        return self._request("POST", "command/%s" % name)


def _short(exc):
    """The reason, without any URL query (a login URL carries the password)."""
    text = re.sub(r"\?[^\s'\")]*", "?...", str(exc))
    return text if len(text) < 240 else text[:240] + "..."
