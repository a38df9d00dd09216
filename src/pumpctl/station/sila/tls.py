"""A self-signed certificate for the station's SiLA server (TLS is the standard's default).

sila2's own generator names only the IP addresses its host resolves to; this one also names
`localhost` and the machine's host name, so clients may connect by either. The SiLA server-UUID
extension (OID 1.3.6.1.4.1.58583) lets sila2 clients check they reached the server they meant.
A lab with its own certificate authority passes `--cert` and `--key` instead.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["SILA_UUID_OID", "self_signed_certificate"]

SILA_UUID_OID = "1.3.6.1.4.1.58583"
_VALID_DAYS = 364


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {ipaddress.ip_address("127.0.0.1")}
    names = {host, socket.gethostname()} if host in ("0.0.0.0", "::", "") else {host}
    for name in names:
        try:
            found.add(ipaddress.ip_address(name))
            continue
        except ValueError:
            pass
        try:
            for info in socket.getaddrinfo(name, None):
                found.add(ipaddress.ip_address(info[4][0]))
        except OSError:
            continue  # a name that does not resolve here still goes in as a DNS name
    return {a for a in found if not a.is_unspecified}


def self_signed_certificate(server_uuid: UUID, host: str) -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM) for a server listening on `host`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pumpctl station")])
    now = datetime.datetime.now(datetime.UTC)
    dns = {"localhost", socket.gethostname()}
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host:
            dns.add(host)
    alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(dns)]
    alt_names += [x509.IPAddress(a) for a in sorted(_addresses(host), key=str)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(SILA_UUID_OID), str(server_uuid).encode("ascii")
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
