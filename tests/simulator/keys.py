"""Key material for simulated devices: TLS certificates and SSH host keys."""

from __future__ import annotations

import datetime
import hashlib
import ssl

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_self_signed_cert(cert_path: str, key_path: str, common_name: str) -> str:
    """Write a self-signed certificate like the one an mPower device makes; return its SHA-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Multi-Tech Systems"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    der = cert.public_bytes(serialization.Encoding.DER)
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    return hashlib.sha256(der).hexdigest()


def server_ssl_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


_PARSED_KEYS: dict[bytes, asyncssh.SSHKey] = {}


def new_rsa_host_key(comment: str) -> tuple[bytes, bytes]:
    """An RSA 2048 host key as (OpenSSH private key, public key line)."""
    key = asyncssh.generate_private_key("ssh-rsa", comment=comment, key_size=2048)
    private = key.export_private_key("openssh")
    _PARSED_KEYS[private] = key
    return private, key.export_public_key("openssh")


def private_key(data: bytes) -> asyncssh.SSHKey:
    """A private key from its file's bytes, parsed at most once per simulator.

    Every boot serves the host key and every tunnel start loads its identity; asyncssh's import checks an RSA key
    each time (~40 ms of CPU), which on a bench of thirty units holds up the event loop they all share. The keys
    are the simulator's own (made by new_rsa_host_key, or copied by a test from a device): nothing to check."""
    key = _PARSED_KEYS.get(data)
    if key is None:
        key = _PARSED_KEYS[data] = asyncssh.import_private_key(data, unsafe_skip_rsa_key_validation=True)
    return key


def fingerprint(public_line: str) -> str:
    return asyncssh.import_public_key(public_line).get_fingerprint("sha256")
