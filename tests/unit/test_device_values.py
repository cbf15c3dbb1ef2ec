"""The strict forms of values read from a unit (plugins/module_utils/_device_values.py)."""

from __future__ import annotations

import pytest

from ansible_collections.lorawan.conduit.plugins.module_utils._device_values import (
    FORMS,
    DeviceValueError,
    checked,
    checked_identity,
    shown,
)

# what real units say (the device reference, §5), and what the simulator says
REAL = {
    "product_id": ["MTCDT-246A", "MTCDT-L4N1-247A", "MTCAP-868-001A", "MTCAP2-L4E1-868"],
    "serial": ["12345678", "23634997"],
    "mac": ["00:08:00:4a:26:f1"],
    "hw_version": ["MTCDT-0.1", "MTCAP-0.0", "MTCAP2-0.1"],
    "uuid": ["7e303897aab9fd0253ecafdba5f3fb37"],
    "lora_eui": ["00:80:00:00:a0:00:15:00"],
    "lora_product_id": ["MTAC-LORA-868", "MTAC-LORA-H-915", "MTCAP-LORA-868"],
    "lora_hw_version": ["MTAC-LORA-1.5", "MTCAP-LORA-1.5"],
    "product_type": ["mtcdt", "mtcap", "mtcap2"],
    "mlinux_version": ["5.3.31", "6.0.1", "5.3"],
}
PLANTED = ["{{ lookup('pipe', 'id') }}", "{% raw %}x", "5.3.31$(reboot)", "5.3.31; reboot", "`id`", "MTCDT-246A: [",
           "MTCDT-246A\nhostname: evil", "1234\x1b[2J", "", " 5.3.31", "5.3.31 ", "!unsafe x", "&anchor", "*alias",
           "00:08:00:4A:26:F1", "\u202e5.3.31"]


@pytest.mark.parametrize("name", sorted(FORMS))
def test_real_values_pass_and_planted_ones_are_refused(name):
    for value in REAL[name]:
        assert checked(name, value) == value
    for value in PLANTED:
        with pytest.raises(DeviceValueError) as caught:
            checked(name, value)
        assert str(caught.value).startswith(name + " '")


def test_a_value_with_no_form_or_not_text_is_refused_and_none_passes():
    assert checked("serial", None) is None
    with pytest.raises(DeviceValueError):
        checked("vendor", "Multi-Tech Systems")
    assert checked("serial", 12345678) == 12345678  # digits that YAML or a template made a number
    with pytest.raises(DeviceValueError):
        checked("serial", True)
    with pytest.raises(DeviceValueError):
        checked("serial", ["12345678"])
    with pytest.raises(DeviceValueError, match="^lora_eui "):
        checked_identity({"mac": "00:08:00:4a:26:f1", "lora_eui": "{{ x }}"})


@pytest.mark.parametrize("value", PLANTED + ["x" * 200])
def test_a_shown_value_is_inert_in_a_template_a_shell_and_yaml(value):
    text = shown(value)
    assert text.startswith("'") and len(text) < 80 * 4
    inner = text[1:].split("'")[0]
    assert not set(inner) & set("{}$`'%\\\n\r\x1b") - {"\\"} and all(" " <= c <= "~" for c in inner)
