"""A consortium's small certificate authority for DICOM over TLS (issue G, PS3.15 B.1).

``yunying pki init`` makes the CA (an EC P-256 key and a self-signed certificate) and an empty
certificate revocation list in the PKI folder (``YUNYING_PKI_DIR``, default ``home/pki``);
``issue-server`` the receiver's certificate for its host names; ``issue-site`` a client
certificate for one site AE — its subject CN is the AE title and its OU the site, so the
receiver can tell that the certificate and the calling AE title belong together; ``revoke``
adds a certificate to the CRL, which the receiver re-reads when it changes. Every issued
certificate is listed in ``issued.json``. Keys are written 0600 and never leave the folder
except the site's, which the technologist installs on the modality (or the edge box).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pacs.pki_files import CA_CERT, CA_KEY, CRL, ISSUED, SERVER


class PkiError(Exception):
    """The PKI folder or a request is not as expected; the message says what to do."""


@dataclass(frozen=True)
class Issued:
    name: str  # file stem: the AE title, or "server"
    serial: int
    certificate: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_ca(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    if not (folder / CA_KEY).exists():
        raise PkiError(f"no CA in {folder}: run `yunying pki init --consortium NAME` first")
    key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())


def _ledger(folder: Path) -> dict[str, Any]:
    path = folder / ISSUED
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"certificates": []}


def _save_ledger(folder: Path, ledger: dict[str, Any]) -> None:
    (folder / ISSUED).write_text(json.dumps(ledger, indent=2, ensure_ascii=False), encoding="utf-8")


def init_ca(folder: Path, consortium: str, *, days: int = 3650, now: datetime | None = None) -> Path:
    """Make the CA and an empty CRL; refuses to replace an existing CA."""
    if (folder / CA_KEY).exists():
        raise PkiError(f"{folder} already holds a CA: every site certificate depends on it — keep it")
    folder.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, consortium),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{consortium} Yunying CA"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(folder / CA_KEY, _key_pem(key))
    (folder / CA_CERT).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _save_ledger(folder, {"consortium": consortium, "certificates": []})
    write_crl(folder, now=now)
    return folder / CA_CERT


def _issue(
    folder: Path,
    stem: str,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    *,
    hosts: list[str] | None,
    days: int,
    now: datetime | None,
    record: dict[str, Any],
) -> Issued:
    ca_key, ca_cert = _load_ca(folder)
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    key_path, cert_path = folder / f"{stem}.key", folder / f"{stem}.pem"
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ledger = _ledger(folder)
    ledger["certificates"].append(
        {"serial": str(serial), "file": cert_path.name, "issued_at": now.isoformat(), "revoked_at": None, **record}
    )
    _save_ledger(folder, ledger)
    return Issued(stem, serial, cert_path, key_path)


def issue_server(folder: Path, hosts: list[str], *, days: int = 825, now: datetime | None = None) -> Issued:
    """The receiver's certificate for ``hosts`` (DNS names or IP addresses the sites dial)."""
    if not hosts:
        raise PkiError("name at least one host the sites connect to (--host yunying.example.cn)")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    return _issue(
        folder,
        SERVER,
        subject,
        ExtendedKeyUsageOID.SERVER_AUTH,
        hosts=hosts,
        days=days,
        now=now,
        record={"kind": "server", "hosts": hosts},
    )


def issue_site(folder: Path, ae_title: str, site: str, *, days: int = 825, now: datetime | None = None) -> Issued:
    """A client certificate for one site AE: CN = the AE title, OU = the site."""
    if not ae_title or len(ae_title) > 16 or not ae_title.isascii():
        raise PkiError(f"an AE title is 1–16 ASCII characters, not {ae_title!r}")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
            x509.NameAttribute(NameOID.COMMON_NAME, ae_title),
        ]
    )
    return _issue(
        folder,
        ae_title,
        subject,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        hosts=None,
        days=days,
        now=now,
        record={"kind": "site", "ae_title": ae_title, "site": site},
    )


def revoke(folder: Path, which: str, *, now: datetime | None = None) -> list[str]:
    """Revoke by serial number or AE title (every certificate of that AE); rewrites the CRL.
    Returns the serials revoked."""
    now = now or datetime.now(UTC)
    ledger = _ledger(folder)
    revoked = []
    for entry in ledger["certificates"]:
        if entry["revoked_at"] is None and which in (entry["serial"], entry.get("ae_title")):
            entry["revoked_at"] = now.isoformat()
            revoked.append(entry["serial"])
    if not revoked:
        raise PkiError(f"no valid certificate with serial or AE title {which!r} (see {folder / ISSUED})")
    _save_ledger(folder, ledger)
    write_crl(folder, now=now)
    return revoked


def write_crl(folder: Path, *, now: datetime | None = None) -> Path:
    """Sign a CRL of every revoked certificate, valid for a year (re-issued on each revocation)."""
    ca_key, ca_cert = _load_ca(folder)
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=365))
    )
    for entry in _ledger(folder)["certificates"]:
        if entry["revoked_at"]:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry["serial"]))
                .revocation_date(datetime.fromisoformat(entry["revoked_at"]))
                .build()
            )
    crl = builder.sign(ca_key, hashes.SHA256())
    path = folder / CRL
    tmp = folder / f".{CRL}.tmp"
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, path)  # the receiver never reads half a CRL
    return path


def issued(folder: Path) -> list[dict[str, Any]]:
    return list(_ledger(folder)["certificates"])
