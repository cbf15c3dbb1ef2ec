"""The DHCP lease files discovery reads: dnsmasq's and ISC dhcpd's, every field from a client taken only in its
strict form, the latest lease of a MAC, expired ones left out; one sighting record per MAC."""

from __future__ import annotations

import calendar
import time

import pytest
import yaml

from ansible_collections.lorawan.conduit.plugins.module_utils._dhcp_leases import (
    LeaseFileError,
    read_leases,
    record_sighting,
)

NOW = calendar.timegm((2026, 12, 4, 12, 0, 0))

DNSMASQ = f"""\
{NOW + 3600} 00:08:00:4a:26:f1 10.20.0.11 mtcdt 01:00:08:00:4a:26:f1
{NOW + 3600} 52:54:00:12:34:56 10.20.0.12 laptop *
{NOW - 60} 00:08:00:4a:26:f2 10.20.0.13 mtcap *
0 00:08:00:4A:26:F3 10.20.0.14 * *
{NOW + 3600} 00:08:00:4a:26:f4 10.20.0.15;rm -rf / {{{{ lookup('pipe','id') }}}} *
{NOW + 3600} 00:08:00:4a:26:zz 10.20.0.16 bad-mac *
garbage line
"""

DHCPD = """\
# The format of this file is documented in the dhcpd.leases(5) manual page.
lease 10.30.0.21 {
  starts 4 2026/12/03 11:00:00;
  ends 4 2026/12/04 11:30:00;
  binding state active;
  hardware ethernet 00:08:00:4a:27:01;
  client-hostname "mtcdt";
}
lease 10.30.0.22 {
  starts 4 2026/12/04 11:50:00;
  ends 5 2026/12/05 11:50:00;
  binding state active;
  hardware ethernet 00:08:00:4a:27:01;
  client-hostname "mtcdt\\";
}
lease 10.30.0.23 {
  starts 4 2026/12/04 11:50:00;
  ends 5 2026/12/05 11:50:00;
  binding state free;
  hardware ethernet 00:08:00:4a:27:02;
}
lease not-an-address {
  ends never;
  hardware ethernet 00:08:00:4a:27:03;
}
"""


def test_dnsmasq_leases_of_multitech_macs_that_have_not_expired(tmp_path):
    path = tmp_path / "dnsmasq.leases"
    path.write_text(DNSMASQ)
    leases = read_leases(str(path), oui="00:08:00", now=NOW)
    assert leases == {
        "00:08:00:4a:26:f1": {"mac": "00:08:00:4a:26:f1", "address": "10.20.0.11", "expires": NOW + 3600,
                              "file": str(path)},
        "00:08:00:4a:26:f3": {"mac": "00:08:00:4a:26:f3", "address": "10.20.0.14", "expires": None, "file": str(path)},
    }  # f4's address field carries shell words: no address; zz is no MAC; f2 expired
    assert "52:54:00:12:34:56" in read_leases(str(path), now=NOW)  # no OUI asked for: every MAC


def test_dhcpd_the_latest_active_lease_of_a_mac(tmp_path):
    path = tmp_path / "dhcpd.leases"
    path.write_text(DHCPD)
    leases = read_leases(str(path), oui="00:08:00", now=NOW)
    assert leases == {"00:08:00:4a:27:01": {"mac": "00:08:00:4a:27:01", "address": "10.30.0.22",
                                            "expires": calendar.timegm((2026, 12, 5, 11, 50, 0)), "file": str(path)}}


def test_a_lease_file_that_cannot_be_read_says_which(tmp_path):
    with pytest.raises(LeaseFileError, match="the DHCP lease file .*missing.leases cannot be read"):
        read_leases(str(tmp_path / "missing.leases"))
    binary = tmp_path / "binary.leases"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(LeaseFileError, match="is not text"):
        read_leases(str(binary))


def test_one_sighting_record_per_mac_keeps_its_first_sighting(tmp_path):
    lease = {"mac": "00:08:00:4a:26:f1", "address": "10.20.0.11", "expires": NOW + 3600, "file": "/leases"}
    first = record_sighting(str(tmp_path), lease, "dhcp:/leases", now=NOW)
    later = record_sighting(str(tmp_path), dict(lease, address="10.20.0.99"), "dhcp:/leases", now=NOW + 600)
    with open(tmp_path / "sightings" / "00-08-00-4a-26-f1.yml") as handle:
        assert yaml.safe_load(handle) == later
    assert later["first_seen"] == first["first_seen"] == "2026-12-04T12:00:00Z"
    assert later["last_seen"] == "2026-12-04T12:10:00Z" and later["address"] == "10.20.0.99"
    assert later["lease_expires"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + 3600))
