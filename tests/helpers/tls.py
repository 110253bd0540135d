"""Test certificates and an HTTPS ``LocalServer`` that can require a client certificate.

    pki = make_pki(tmp_path)                        # a CA, a server cert for 127.0.0.1, a client cert
    with TlsServer(pki, require_client_cert=True) as srv:
        srv.on("POST", "/hook", Reply(200, json={"id": "r1"}))
        ... srv.url + "/hook" ...                   # https://127.0.0.1:PORT
        srv.client_subjects                         # CN of each client certificate presented
        srv.handshake_errors                        # each TLS handshake the server refused
    TlsServer(pki, require_client_cert=True, max_version=ssl.TLSVersion.TLSv1_2)  # a TLS 1.2 server

Certificates are made with ``cryptography`` (EC P-256, valid for a day). ``Pki`` holds the
paths: ``ca`` (the CA bundle a client verifies with), ``client_pem`` (certificate and key in one
file) and ``client_cert`` / ``client_key`` (separate), and the server's own files.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .httpserver import LocalServer

__all__ = ["Pki", "TlsServer", "make_pki", "server_context"]


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate: the bundle a client verifies the server with
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_pem: Path  # client certificate and key in one PEM
    client_cn: str
    other_ca: Path  # another CA: verifying the server against it fails
    stranger_pem: Path  # a client certificate and key signed by ``other_ca``, not the test CA


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str, *,
          server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = _dt.datetime.now(_dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - _dt.timedelta(minutes=5))
         .not_valid_after(now + _dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca_key.public_key()), critical=False)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
             critical=False))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def make_pki(directory: Path, client_cn: str = "trigrun-test-client") -> Pki:
    """Write a CA, a server certificate for 127.0.0.1 / localhost and a client certificate
    (both signed by the CA), and an unrelated CA, into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("trigrun test CA")
    s_key, s_cert = _leaf(ca_key, ca_cert, "127.0.0.1", server=True)
    c_key, c_cert = _leaf(ca_key, ca_cert, client_cn, server=False)
    o_key, other = _make_ca("some other CA")
    x_key, x_cert = _leaf(o_key, other, "stranger", server=False)
    files = {"ca.pem": _cert_pem(ca_cert), "ca-key.pem": _key_pem(ca_key),
             "server.pem": _cert_pem(s_cert), "server-key.pem": _key_pem(s_key),
             "client.pem": _cert_pem(c_cert), "client-key.pem": _key_pem(c_key),
             "client-both.pem": _cert_pem(c_cert) + _key_pem(c_key),
             "other-ca.pem": _cert_pem(other),
             "stranger-both.pem": _cert_pem(x_cert) + _key_pem(x_key)}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    d = directory
    return Pki(ca=d / "ca.pem", ca_key=d / "ca-key.pem", server_cert=d / "server.pem",
               server_key=d / "server-key.pem", client_cert=d / "client.pem",
               client_key=d / "client-key.pem", client_pem=d / "client-both.pem",
               client_cn=client_cn, other_ca=d / "other-ca.pem",
               stranger_pem=d / "stranger-both.pem")


def server_context(pki: Pki, *, require_client_cert: bool = False) -> ssl.SSLContext:
    """The server's TLS context; with ``require_client_cert``, a client must present a
    certificate signed by the test CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=pki.ca)
    return ctx


class TlsServer(LocalServer):
    """``LocalServer`` over TLS on 127.0.0.1 (``url`` is ``https://127.0.0.1:PORT``).

    The handshake runs in the connection's own thread, so a client that fails it never stalls
    the server. ``client_subjects`` records the CN of every client certificate presented,
    ``handshake_errors`` every handshake the server refused (e.g. no client certificate).
    """

    def __init__(self, pki: Pki, *, require_client_cert: bool = False,
                 max_version: ssl.TLSVersion | None = None) -> None:
        super().__init__()
        self.context = server_context(pki, require_client_cert=require_client_cert)
        if max_version is not None:
            self.context.maximum_version = max_version
        self.url = f"https://127.0.0.1:{self.port}"
        self.client_subjects: list[str] = []
        self.handshake_errors: list[str] = []
        httpd = self._httpd
        httpd.socket = self.context.wrap_socket(httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        base = httpd.RequestHandlerClass
        server = self

        class TlsHandler(base):  # type: ignore[valid-type,misc]
            def setup(self) -> None:
                conn: Any = self.request
                conn.settimeout(10)
                try:
                    conn.do_handshake()
                except (ssl.SSLError, OSError) as exc:
                    with server._lock:
                        server.handshake_errors.append(f"{type(exc).__name__}: {exc}")
                    raise
                conn.settimeout(None)
                peer = conn.getpeercert()
                if peer:
                    cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn
                               if k == "commonName"), "?")
                    with server._lock:
                        server.client_subjects.append(cn)
                super().setup()

        httpd.RequestHandlerClass = TlsHandler

    def wait_for_handshake_errors(self, n: int = 1, timeout: float = 5.0) -> list[str]:
        """The handshakes refused so far, once there are ``n`` (the server's thread records a
        refusal just after the client has read its alert)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.handshake_errors) >= n:
                    return list(self.handshake_errors)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} refused handshakes, got {self.handshake_errors}")

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.client_subjects.clear()
            self.handshake_errors.clear()

