"""Redis with a password, an ACL user, and TLS with a CA file and a client certificate.

Each server here is a real redis-server this test starts on a free port: one with
``--requirepass`` and the ACL user of docs/OPERATIONS.md, one that speaks only TLS and asks
for client certificates (certificates made here with ``cryptography``). A refused password
must be named as such, with the URL forms that carry one, never as "is it running" and never
as the eviction override; the password itself is never printed.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import find_redis_server
from service_process import free_port, run_verifier, world_env
from service_world import World, running

from verifier.cli.main import main

PASSWORD = "pw-4-requirepass"
ACL_PASSWORD = "pw-4-acl-user"
# The least-privilege ACL rule docs/OPERATIONS.md gives for the service's user.
ACL_RULE = ["on", f">{ACL_PASSWORD}", "~v*", "+@all", "-@dangerous", "+config|get", "+info"]


class Server:
    """A redis-server with extra arguments; ``ready(sock)`` says when it answers."""

    def __init__(self, args: list[str], port: int, tls: ssl.SSLContext | None = None) -> None:
        binary = find_redis_server()
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="redis-auth-"))
        self.proc = subprocess.Popen(
            [binary, *args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers(tls):
            assert self.proc.poll() is None and time.monotonic() < deadline, "no redis-server"
            time.sleep(0.02)

    def _answers(self, tls: ssl.SSLContext | None) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                sock = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
                sock.sendall(b"PING\r\n")
                return sock.recv(64)[:1] in (b"+", b"-")  # PONG, or NOAUTH: it is up
        except (OSError, ssl.SSLError):
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def password_redis() -> Iterator[int]:
    """Port of a Redis that requires PASSWORD, with the ACL user ``verifier``."""
    import redis

    port = free_port()
    server = Server(["--port", str(port), "--requirepass", PASSWORD], port)
    client = redis.Redis(port=port, password=PASSWORD)
    client.execute_command("ACL", "SETUSER", "verifier", *ACL_RULE)
    client.close()
    yield port
    server.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_auth_failure(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verifier: error: "), err
    line = lines[0]
    assert "Redis authentication failed" in line, line
    assert "redis://:PASSWORD@host" in line and "redis://USER:PASSWORD@host" in line, line
    assert "is it running" not in line and "ALLOW_EVICTION" not in line, line
    assert PASSWORD not in line and ACL_PASSWORD not in line, line
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize(
    "userinfo, why",
    [
        ("", "requires a password and the store URL has none"),  # no password at all
        (":wrong@", "is not accepted"),  # requirepass, wrong password
        ("verifier:wrong@", "is not accepted"),  # ACL user, wrong password
        ("nobody:" + ACL_PASSWORD + "@", "is not accepted"),  # no such ACL user
    ],
)
def test_a_refused_password_is_named_with_the_url_forms(
    capsys, monkeypatch, password_redis: int, userinfo: str, why: str
) -> None:
    monkeypatch.delenv("VERIFIER_STORE", raising=False)
    url = f"redis://{userinfo}127.0.0.1:{password_redis}/0"
    code, out, err = run(capsys, "institutions", "get", "hosp-1", "--store", url)
    assert code == 2 and out == ""
    assert_auth_failure(err, why)


def test_a_password_where_none_is_required_is_named(capsys, redis_url: str) -> None:
    url = redis_url.replace("redis://", f"redis://:{PASSWORD}@")
    code, _, err = run(capsys, "institutions", "get", "hosp-1", "--store", url)
    assert code == 2
    assert_auth_failure(err, "requires none")


def test_serve_refuses_to_start_with_a_wrong_password(tmp_path, password_redis: int) -> None:
    world = World(tmp_path)
    url = f"redis://:wrong@127.0.0.1:{password_redis}/0"
    result = run_verifier(["serve"], world_env(world, url, free_port()))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert_auth_failure(result.stderr, "is not accepted")


@pytest.mark.parametrize(
    "userinfo", [f":{PASSWORD}@", f"verifier:{ACL_PASSWORD}@"], ids=["requirepass", "acl-user"]
)
def test_the_right_password_or_acl_user_serves_and_administers(
    capsys, monkeypatch, tmp_path, password_redis: int, userinfo: str
) -> None:
    url = f"redis://{userinfo}127.0.0.1:{password_redis}/0"
    monkeypatch.setenv("VERIFIER_STORE", url)
    assert (
        run(capsys, "institutions", "put", "hosp-9", "--name", "H", "--cards", "mi-voucher")[0] == 0
    )
    code, credential, _ = run(capsys, "scanners", "add", "--institution", "hosp-9")
    assert code == 0 and credential.startswith("s-")
    code, out, _ = run(capsys, "scanners", "list", "--institution", "hosp-9")
    assert code == 0 and credential.split(".")[0] in out

    async def verify() -> None:
        world = World(tmp_path)
        async with running(world, url) as svc:  # the claim script runs as this user
            status, doc = await svc.verify(world.token("alice"))
            assert (status, doc["reason"]) == (200, "ok")
            status, doc = await svc.verify(world.token("alice"))
            assert (status, doc["reason"]) == (200, "ok")

    asyncio.run(verify())


# --- TLS ----------------------------------------------------------------------------------------


def _certificates(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer, exts):
        b = x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
        b = b.public_key(key.public_key()).serial_number(x509.random_serial_number())
        b = b.not_valid_before(now - datetime.timedelta(minutes=5))
        b = b.not_valid_after(now + datetime.timedelta(days=1))
        for ext, critical in exts:
            b = b.add_extension(ext, critical)
        return b.sign(signer, hashes.SHA256())

    def write(stem: str, key: ec.EllipticCurvePrivateKey, c: x509.Certificate) -> None:
        (d / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (d / f"{stem}.crt").write_bytes(c.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("test-ca", ca_key, "test-ca", ca_key, [(x509.BasicConstraints(True, None), True)])
    write("ca", ca_key, ca)
    for stem, usage, san in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, True),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, False),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        exts: list = [(x509.ExtendedKeyUsage([usage]), False)]
        if san:
            ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            exts.append((x509.SubjectAlternativeName([ip]), False))
        write(stem, key, cert(stem, key, "test-ca", ca_key, exts))
    return {p.stem + p.suffix: p for p in d.iterdir()}


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Path]]]:
    """(port, certificate files) of a Redis that speaks only TLS and wants client certs."""
    files = _certificates(tmp_path_factory.mktemp("tls"))
    port = free_port()
    probe = ssl.create_default_context(cafile=str(files["ca.crt"]))
    probe.load_cert_chain(files["client.crt"], files["client.key"])
    server = Server(
        ["--port", "0", "--tls-port", str(port)]
        + ["--tls-cert-file", str(files["server.crt"]), "--tls-key-file", str(files["server.key"])]
        + ["--tls-ca-cert-file", str(files["ca.crt"]), "--tls-auth-clients", "yes"],
        port,
        tls=probe,
    )
    yield port, files
    server.stop()


def test_rediss_with_a_ca_file_and_a_client_certificate(
    capsys, monkeypatch, tmp_path, tls_redis
) -> None:
    port, files = tls_redis
    url = f"rediss://127.0.0.1:{port}/0"
    monkeypatch.setenv("VERIFIER_STORE", url)
    monkeypatch.setenv("VERIFIER_REDIS_CA_FILE", str(files["ca.crt"]))
    monkeypatch.setenv("VERIFIER_REDIS_CERT_FILE", str(files["client.crt"]))
    monkeypatch.setenv("VERIFIER_REDIS_KEY_FILE", str(files["client.key"]))
    code, out, err = run(
        capsys, "institutions", "put", "hosp-t", "--name", "T", "--cards", "mi-voucher"
    )
    assert code == 0, err

    async def verify() -> None:
        world = World(tmp_path)
        tls = {
            "redis_ca_file": str(files["ca.crt"]),
            "redis_cert_file": str(files["client.crt"]),
            "redis_key_file": str(files["client.key"]),
        }
        async with running(world, url, **tls) as svc:
            status, doc = await svc.verify(world.token("alice"))
            assert (status, doc["reason"]) == (200, "ok")

    asyncio.run(verify())


def test_rediss_without_the_ca_file_says_which_setting_is_missing(
    capsys, monkeypatch, tls_redis
) -> None:
    port, files = tls_redis
    monkeypatch.delenv("VERIFIER_REDIS_CA_FILE", raising=False)
    monkeypatch.setenv("VERIFIER_REDIS_CERT_FILE", str(files["client.crt"]))
    monkeypatch.setenv("VERIFIER_REDIS_KEY_FILE", str(files["client.key"]))
    url = f"rediss://127.0.0.1:{port}/0"
    code, _, err = run(capsys, "institutions", "get", "x", "--store", url)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "certificate" in err and "VERIFIER_REDIS_CA_FILE" in err, err


@pytest.mark.parametrize(
    "env, needle",
    [
        # A certificate without its key.
        ({"VERIFIER_REDIS_CERT_FILE": "client.crt"}, "VERIFIER_REDIS_KEY_FILE"),
        # TLS files for a store that is not TLS: they would be silently unused.
        (
            {"VERIFIER_STORE": "redis://127.0.0.1:1/0", "VERIFIER_REDIS_CA_FILE": "ca.crt"},
            "rediss://",
        ),
        # A CA file that does not exist.
        ({"VERIFIER_REDIS_CA_FILE": "/nonexistent/ca.pem"}, "VERIFIER_REDIS_CA_FILE"),
    ],
)
def test_tls_settings_mistakes_are_refused(capsys, monkeypatch, env, needle) -> None:
    monkeypatch.setenv("VERIFIER_STORE", "rediss://127.0.0.1:1/0")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = run(capsys, "institutions", "get", "x")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert needle in err, err


def test_rediss_without_a_client_certificate_says_the_server_wants_one(
    capsys, monkeypatch, tls_redis
) -> None:
    port, files = tls_redis
    monkeypatch.setenv("VERIFIER_REDIS_CA_FILE", str(files["ca.crt"]))
    monkeypatch.delenv("VERIFIER_REDIS_CERT_FILE", raising=False)
    monkeypatch.delenv("VERIFIER_REDIS_KEY_FILE", raising=False)
    url = f"rediss://127.0.0.1:{port}/0"
    code, _, err = run(capsys, "institutions", "get", "x", "--store", url)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    # Said for certain when the server's alert arrives; as a hint when it only closed the
    # connection (which of the two the client sees is a race).
    assert "VERIFIER_REDIS_CERT_FILE" in err and "VERIFIER_REDIS_KEY_FILE" in err, err
