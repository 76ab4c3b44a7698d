"""TLS material for the emulator: a private CA, a server certificate it signs, and the JWT signing key.

Files in the TLS directory:
  ca.pem, ca-key.pem          the CA clients trust (`requests.Session().verify = "DIR/ca.pem"`)
  server.pem, server-key.pem  certificate for 127.0.0.1, ::1 and localhost, signed by the CA
  jwt-key.pem, jwt-cert.pem   the connected app's JWT bearer key and the certificate registered on the app
Existing valid files are reused, so clients keep trusting a restarted emulator.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

_HOSTS = ("localhost",)
_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    jwt_key: Path
    jwt_cert: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sfconnector emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    if private:
        os.chmod(tmp, 0o600)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _valid(path: Path, extra_hosts: tuple[str, ...]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    names = set(san.get_values_for_type(x509.DNSName)) | {
        str(i) for i in san.get_values_for_type(x509.IPAddress)
    }
    return all(h in names for h in extra_hosts)


def ensure_tls(directory: Path, hosts: tuple[str, ...] = ()) -> TlsFiles:
    """Create (or reuse) the CA, the server certificate for loopback plus `hosts`, and the JWT key."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        directory=directory,
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        jwt_key=directory / "jwt-key.pem",
        jwt_cert=directory / "jwt-cert.pem",
    )
    extra = tuple(h for h in hosts if h and h not in _HOSTS + _IPS + ("0.0.0.0", "::"))
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key_path = directory / "ca-key.pem"
    fresh_ca = not (files.ca.exists() and ca_key_path.exists() and _valid(files.ca, ()))
    if fresh_ca:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("sfconnector emulator CA"))
            .issuer_name(_name("sfconnector emulator CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(ca_key_path, _key_pem(ca_key), private=True)
        _write(files.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    else:
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())

    if fresh_ca or not files.server_key.exists() or not _valid(files.server_cert, extra):
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = [x509.DNSName(h) for h in (*_HOSTS, *extra) if not _is_ip(h)]
        alt += [x509.IPAddress(ipaddress.ip_address(h)) for h in (*_IPS, *extra) if _is_ip(h)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write(files.server_key, _key_pem(key), private=True)
        _write(files.server_cert, cert.public_bytes(serialization.Encoding.PEM))

    if not (files.jwt_key.exists() and _valid(files.jwt_cert, ())):
        # RS256 is what Salesforce's JWT bearer flow signs with, so this key is RSA.
        jwt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwt_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("sfconnector-demo"))
            .issuer_name(_name("sfconnector-demo"))
            .public_key(jwt_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(jwt_key, hashes.SHA256())
        )
        _write(files.jwt_key, _key_pem(jwt_key), private=True)
        _write(files.jwt_cert, jwt_cert.public_bytes(serialization.Encoding.PEM))
    return files


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
