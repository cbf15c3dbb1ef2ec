# -*- coding: utf-8 -*-
# Copyright: lorawan.conduit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sockets to gateways: bound to a bench NIC when asked, with bounded waits.

Every bench gateway answers at the same address (192.168.2.1); a socket bound
to the NIC it hangs off (``SO_BINDTODEVICE``) reaches that one and no other.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import hashlib
import socket
import ssl
import time

# Linux value; Python exposes it as socket.SO_BINDTODEVICE on Linux only.
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def interface_socket_options(interface):
    """Socket options that pin a connection to ``interface`` (none when not given)."""
    if not interface:
        return []
    return [(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode("utf-8") + b"\0")]


def connect(address, port, timeout, interface=None):
    """A connected TCP socket, bound to ``interface`` when given."""
    last_error = None
    for family, kind, proto, _canon, sockaddr in socket.getaddrinfo(address, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            for level, option, value in interface_socket_options(interface):
                sock.setsockopt(level, option, value)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except (OSError, socket.timeout) as exc:
            last_error = exc
            sock.close()
    raise last_error if last_error else OSError("no address for %s" % address)


def ssh_banner(address, port, timeout=3.0, interface=None):
    """The SSH identification line the server sends, or None when nothing answers."""
    try:
        sock = connect(address, port, timeout, interface)
    except (OSError, socket.timeout):
        return None
    try:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data and time.monotonic() < deadline:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
        line = data.split(b"\n", 1)[0].strip().decode("ascii", "replace")
        return line if line.startswith("SSH-") else None
    except (OSError, socket.timeout):
        return None
    finally:
        sock.close()


def peer_certificate_sha256(address, port, timeout=10.0, interface=None):
    """SHA-256 (lower-case hex) of the certificate the TLS server presents."""
    sock = connect(address, port, timeout, interface)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=address) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    finally:
        sock.close()


def normalize_fingerprint(text):
    """``AB:CD:..`` or ``abcd..`` → lower-case hex without separators."""
    return text.replace(":", "").replace(" ", "").lower() if text else text


class Deadline:
    """A timeout that several waits share, on a clock tests can replace."""

    def __init__(self, seconds, clock=time.monotonic, sleep=time.sleep):
        self._clock = clock
        self._sleep = sleep
        self.seconds = seconds
        self.started = clock()

    def remaining(self):
        return max(0.0, self.seconds - (self._clock() - self.started))

    def expired(self):
        return self.remaining() <= 0

    def elapsed(self):
        return self._clock() - self.started

    def pause(self, interval):
        self._sleep(min(interval, max(self.remaining(), 0.0)))

    def wait_for(self, condition, interval=1.0):
        """Call ``condition`` until it returns something truthy or the time is up; return the last value."""
        while True:
            value = condition()
            if value or self.expired():
                return value
            self.pause(interval)
