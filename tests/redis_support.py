"""A real ``redis-server`` for the tests: its own free port on 127.0.0.1, its own directory, no
persistence; killed, paused or restarted on the same port when a test wants an outage."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import TIMEOUT, free_port, wait_for_port

INSTALL_HINT = "redis-server not installed: apt-get install -y redis-server"


class RedisServer:
    def __init__(self, binary: str, directory: Path, password: str | None = None, tls: bool = False) -> None:
        self.binary = binary
        self.directory = directory
        self.password = password
        self.certificate = make_certificate(directory) if tls else None
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.certificate is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.certificate}"

    def start(self) -> RedisServer:
        command = [self.binary, "--bind", "127.0.0.1", "--dir", str(self.directory), "--save", "", "--appendonly", "no"]
        if self.certificate is None:
            command += ["--port", str(self.port)]
        else:  # TLS only; the client verifies the server's certificate, the server does not ask for one
            key = str(self.certificate.with_suffix(".key"))
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            command += ["--tls-cert-file", str(self.certificate), "--tls-key-file", key]
            command += ["--tls-ca-cert-file", str(self.certificate)]
        if self.password:
            command += ["--requirepass", self.password]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)
        return self

    def kill(self) -> None:
        """SIGKILL: the abrupt end of a crash, no goodbye to the clients beyond the kernel's."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, like a host gone without a FIN."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (``server.pem``, key ``server.key``), by openssl."""
    certificate = directory / "server.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(certificate.with_suffix(".key"))]
    subprocess.run([*command, "-out", str(certificate)], check=True, capture_output=True, timeout=TIMEOUT)
    return certificate


@contextmanager
def running_redis(directory: Path, password: str | None = None, tls: bool = False) -> Iterator[RedisServer]:
    """A started server, killed on the way out; skips the test when there is no redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(INSTALL_HINT)
    server = RedisServer(binary, directory, password, tls)
    try:
        yield server.start()
    finally:
        server.kill()  # a paused server too: SIGKILL needs no cooperation
