"""What gateway_health makes of a unit's answers: each value checked against its strict form before it is compared
or shown, a forwarder by its pid file, the clock against the controller's around the round trip."""

from __future__ import annotations

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._gateway_health import HealthCheck

RECORD = {"mlinux_version": "5.3.31", "identity": {"lora_eui": "00:80:00:00:a0:00:15:00"}}
GOOD = ["mLinux 5.3.31\nBuilt from branch: ttni-5.3\n", "00:80:00:00:A0:00:15:00\n", "ttn-pkt-forwarder running\n",
        "1000\n", "12345.67 2000.1\n",
        "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/root 100000 50000 50000 50% /\n",
        "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/mtd 8000 7000 1000 88% /var/config\n"]


def _checker(tmp_path, **params):
    base = dict(name="gw-01", ledger_dir=str(tmp_path), expected_mlinux_version=None, clock_tolerance=60,
                min_free_mib=2, tunnel=None)
    base.update(params)
    return HealthCheck(base)


def _read(tmp_path, sections, before=1000.0, after=1000.2, **params):
    return _checker(tmp_path, **params)._read_checks(RECORD, sections, before, after)


def test_a_well_unit_passes_but_a_small_config_partition_does_not(tmp_path):
    checks = _read(tmp_path, GOOD)
    assert checks["mlinux_version"]["ok"] and checks["lora_eui"]["ok"] and checks["forwarder"]["ok"]
    assert checks["clock"] == {"ok": True, "value": 0, "detail": "within 60 s", "remediable": False}
    assert checks["uptime"]["value"] == 12345
    assert checks["free_space"]["ok"] is False  # 1000 KiB on /var/config, 2 MiB wanted
    assert checks["free_space"]["detail"] == "low: /var/config 1000 KiB free (under 2 MiB)"
    assert _read(tmp_path, GOOD, min_free_mib=0)["free_space"]["ok"] is True


@pytest.mark.parametrize("index, answer, check, words", [
    (0, "mLinux {{ lookup('pipe', 'id') }}\n", "mlinux_version", "which is no mLinux"),
    (0, "mLinux 6.0.1\n", "mlinux_version", "mLinux 6.0.1, but gw-01 was provisioned as 5.3.31"),
    (1, "00:80:00:00:a0:00:15:01\n", "lora_eui", "LoRa EUI 00:80:00:00:a0:00:15:01, but gw-01 was provisioned"),
    (1, "\x1b[31m;rm -rf /\n", "lora_eui", "which is no LoRa EUI"),
    (2, "ttn-pkt-forwarder stopped\n", "forwarder", "ttn-pkt-forwarder is not running"),
    (3, "now\n", "clock", "the unit did not say its time"),
    (3, "4600\n", "clock", "off by 3600 s (more than 60 s)"),
    (6, "df: /var/config: No such file\n", "free_space", "df did not say how much room /var/config has"),
])
def test_what_the_unit_answers_is_checked_before_it_is_compared_or_shown(tmp_path, index, answer, check, words):
    sections = list(GOOD)
    sections[index] = answer
    result = _read(tmp_path, sections, min_free_mib=0)[check]
    assert result["ok"] is False and words in result["detail"], result
    assert "\x1b" not in result["detail"] and "{{" not in str(result["value"])


def test_a_forwarder_line_the_collection_did_not_ask_for_counts_as_none_installed(tmp_path):
    sections = list(GOOD)
    sections[2] = "evil-forwarder running\n"
    assert _read(tmp_path, sections, min_free_mib=0)["forwarder"] == {
        "ok": True, "value": None, "detail": "no packet forwarder installed (make apply installs it)",
        "remediable": False}


def test_the_round_trip_widens_the_clock_tolerance(tmp_path):
    sections = list(GOOD)
    sections[3] = "1070\n"
    assert _read(tmp_path, sections, before=1000.0, after=1000.0, min_free_mib=0)["clock"]["ok"] is False
    assert _read(tmp_path, sections, before=1000.0, after=1030.0, min_free_mib=0)["clock"]["ok"] is True


@pytest.mark.parametrize("listing, ok, words", [
    (None, True, "not asked of the jumphost"),
    ({"registered": False}, False, "the jumphost has no registration of it"),
    ({"listening": True, "port_held_by_other_uid": [1001]}, False, "held by another account (uid 1001)"),
    ({"listening": False, "port_held_by_other_uid": []}, False, "does not listen on the jumphost"),
    ({"listening": True, "keepalive_listening": False}, False, "its keepalive port does not"),
    ({"listening": True, "keepalive_listening": True}, True, "listening, owned by its account"),
])
def test_the_tunnel_as_the_jumphost_lists_it(tmp_path, listing, ok, words):
    result = _checker(tmp_path, tunnel=listing)._tunnel_check()
    assert result["ok"] is ok and words in result["detail"]
