"""A throw-away certificate authority for `scripts/stack up --secure` (git-ignored, loopback only).

openssl makes a CA and one server certificate for 127.0.0.1/localhost, used by every broker's
SASL_SSL listener (as a PEM keystore) and by the S3 server's https endpoint.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from loglake.errors import LoglakeError


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LoglakeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def ensure_certificates(tls_dir: Path) -> None:
    if (tls_dir / "server.pem").exists():
        return
    if not shutil.which("openssl"):
        raise LoglakeError("openssl is needed for --secure; install it (apt-get install openssl)")
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls_dir.chmod(0o700)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "365",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=loglake development CA",
        cwd=tls_dir,
    )
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "server.key", cwd=tls_dir
    )
    _openssl("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=tls_dir)
    (tls_dir / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "365",
        "-extfile",
        "san.ext",
        cwd=tls_dir,
    )
    key = (tls_dir / "server.key").read_text()
    cert = (tls_dir / "server.crt").read_text()
    (tls_dir / "server.pem").write_text(key + cert)
    for name in ("ca.key", "server.key", "server.pem"):
        (tls_dir / name).chmod(0o600)
