"""``carewatch serve --tls-cert/--tls-key``: HTTPS, and the cookies marked Secure.
The certificate is made for the test with openssl (self-signed, 127.0.0.1)."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.streams.web.support import filled_store


def test_served_over_tls_with_secure_cookies(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make the test certificate (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    db = tmp_path / "tls.db"
    filled_store(str(db), n=3).close()
    port = int(os.environ.get("CAREWATCH_TEST_WEB_PORT", "28080")) + 2
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "serve", "--store", str(db), "--port", str(port),
         "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the certificate names an IP address in its CN only
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/signin", context=context, timeout=5
                )
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the TLS server did not come up"
                time.sleep(0.2)
        cookie = page.headers["Set-Cookie"]
        assert re.search(r"cw_pre=[^;]+;.*HttpOnly", cookie)
        assert "Secure" in cookie
    finally:
        proc.terminate()
        proc.wait(timeout=10)
