"""Products and identities of simulated Conduits.

Product ids, hardware versions and LoRa card names are the ones seen in the
field (reference: conduit-protocol.md §5.2, §7); every device gets its own MAC
under MultiTech's OUI 00:08:00, its own 8-digit serial and LoRa EUI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MULTITECH_OUI = "00:08:00"


@dataclass(frozen=True)
class Product:
    product_id: str
    product_type: str  # mtcdt / mtcap: the image "model"
    hw_version: str
    lora_product_id: str
    lora_hw_version: str
    cellular: bool


PRODUCTS = {
    p.product_id: p
    for p in (
        Product("MTCDT-246A", "mtcdt", "MTCDT-0.1", "MTAC-LORA-H-915", "MTAC-LORA-1.5", False),
        Product("MTCDT-210A", "mtcdt", "MTCDT-0.1", "MTAC-LORA-H-868", "MTAC-LORA-1.5", False),
        Product("MTCDT-L4N1-247A", "mtcdt", "MTCDT-0.1", "MTAC-LORA-H-915", "MTAC-LORA-1.5", True),
        Product("MTCDT-LAT1-246A", "mtcdt", "MTCDT-0.1", "MTAC-LORA-H-915", "MTAC-LORA-1.5", True),
        Product("MTCAP-915-001A", "mtcap", "MTCAP-0.1", "MTCAP-LORA-915", "MTCAP-LORA-1.5", False),
        Product("MTCAP-868-001A", "mtcap", "MTCAP-0.1", "MTCAP-LORA-868", "MTCAP-LORA-1.5", False),
        Product("MTCAP-L4E1-868-041A", "mtcap", "MTCAP-0.1", "MTCAP-LORA-868", "MTCAP-LORA-1.5", True),
    )
}

DEFAULT_PRODUCT = {"mtcdt": "MTCDT-246A", "mtcap": "MTCAP-915-001A"}
CELLULAR_PRODUCT = {"mtcdt": "MTCDT-L4N1-247A", "mtcap": "MTCAP-L4E1-868-041A"}


@dataclass(frozen=True)
class Identity:
    mac: str  # 00:08:00:4a:xx:xx, lower case, colon separated
    serial: str  # mts-io-sysfs device-id
    lora_eui: str  # 00:80:00:00:xx:xx:xx:xx
    uuid: str
    imei: str


def make_identity(seed: str, index: int) -> Identity:
    """A stable identity for device ``index`` of the fleet seeded with ``seed``."""
    digest = hashlib.sha256(f"{seed}/{index}".encode()).digest()
    mac = f"{MULTITECH_OUI}:{digest[0]:02x}:{digest[1]:02x}:{digest[2]:02x}"
    serial = f"{int.from_bytes(digest[3:7], 'big') % 90000000 + 10000000}"
    lora_eui = "00:80:00:00:" + ":".join(f"{b:02x}" for b in digest[7:11])
    uuid = digest[11:27].hex()
    imei = f"35{int.from_bytes(digest[27:32], 'big') % 10**13:013d}"
    return Identity(mac=mac, serial=serial, lora_eui=lora_eui, uuid=uuid, imei=imei)
