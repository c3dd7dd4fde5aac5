"""docs/deploy/nginx.conf as it is deployed: Debian's nginx, TLS, in front of ``python -m asgi_chat``.

The file is used as it stands. The test fills in its ``${...}`` placeholders with the envsubst
command its header gives (free ports on 127.0.0.1, a certificate from a test CA, the app's
address) and includes it from a small nginx.conf of its own, which gives nginx what Debian's
/etc/nginx/nginx.conf would: a pid file, logs and temporary directories, all in the test's
temporary directory (never the system's configuration, never port 80 or 443). That nginx.conf
also sets ``proxy_bind 127.0.0.7``: nginx's connections to the app come from another address
than 127.0.0.1, as from a proxy on another host, which uvicorn does not trust by default.

Users come from addresses of their own: each client is bound to 127.0.1.N (Linux routes all of
127.0.0.0/8 to the loopback interface).

TLS: trustme makes a root CA, an intermediate and the site's certificate; nginx serves the
site's certificate and the intermediate. Chromium trusts the root through an NSS database
(``$HOME/.pki/nssdb``, where Chromium on Linux looks, made with certutil), and the Python
clients through an ``ssl`` context with the root: no certificate error is ignored anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import uvicorn
from playwright.sync_api import expect, sync_playwright
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.e2e.browser_support import CHROMIUM_ARGS, TIMEOUT_MS, expect_state, record_sockets, send
from tests.helpers import ROOT, TIMEOUT, Server, free_port, recv, wait_for_port

SITE_CONF = ROOT / "docs" / "deploy" / "nginx.conf"
# The placeholders the file documents, and no others.
PLACEHOLDERS = ("SERVER_NAME", "HTTPS_LISTEN", "HTTP_LISTEN", "UPSTREAM", "TLS_CERTIFICATE", "TLS_CERTIFICATE_KEY")
PROXY_ADDRESS = "127.0.0.7"  # where nginx's connections to the app come from (proxy_bind)
USERS = 150  # clients from 127.0.1.1 ... 127.0.1.150
PER_ADDRESS = 100  # ASGI_CHAT_MAX_CONNECTIONS_PER_ADDRESS's default
CROWDED = "127.0.2.1"  # the address that opens PER_ADDRESS connections, and one more
PROXY_WARNING = "carries X-Forwarded-For, which the server ignored"

# Everything of nginx.conf that docs/deploy/nginx.conf leaves to the system's, in {dir}.
MAIN_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
# Each WebSocket takes two connections (the client's, the app's): room for 250 at once.
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_bind {proxy};
    include {site};
}}
"""


def render(values: Mapping[str, str]) -> str:
    """The file with its placeholders filled in by the envsubst command its header gives."""
    text = SITE_CONF.read_text()
    envsubst = program("envsubst", "gettext-base")
    env = {**os.environ, **values}
    run = subprocess.run([envsubst, listed(text)], input=text, capture_output=True, text=True, env=env, check=True)
    return run.stdout


def listed(text: str) -> str:
    """The variables the header's ``envsubst '...'`` names."""
    found = re.search(r"envsubst '([^']*)'", text)
    assert found is not None, "no envsubst command in the header"
    return found[1]


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)\}", text))


def program(name: str, package: str, *also: str) -> str:
    """A system program the test needs, or a failure saying how to install it (CI skips nothing)."""
    found = shutil.which(name) or next((path for path in also if os.access(path, os.X_OK)), None)
    if found is None:
        pytest.fail(f"the nginx tests need {name}: apt-get install -y {package}", pytrace=False)
    return found


# --- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    ca: Path  # the root CA's certificate: what a client trusts
    chain: Path  # the site's certificate, then the intermediate: what nginx serves
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client that trusts the test CA and nothing else, and checks the host name."""
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    directory = tmp_path_factory.mktemp("tls")
    root = trustme.CA(organization_name="asgi_chat test CA")
    intermediate = root.create_child_ca()
    site = intermediate.issue_cert("127.0.0.1", "localhost")
    tls = Tls(directory / "ca.pem", directory / "chain.pem", directory / "key.pem")
    root.cert_pem.write_to_path(str(tls.ca))
    tls.chain.write_bytes(b"".join(blob.bytes() for blob in site.cert_chain_pems))
    site.private_key_pem.write_to_path(str(tls.key))
    return tls


# --- nginx -------------------------------------------------------------------------------------


class Nginx:
    """nginx on free ports of 127.0.0.1 with docs/deploy/nginx.conf, everything else in ``directory``."""

    def __init__(self, directory: Path, upstream_port: int, tls: Tls) -> None:
        self.directory = directory
        self.https_port, self.http_port = free_port(), free_port()
        values = {
            "SERVER_NAME": "127.0.0.1",
            "HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
            "HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "UPSTREAM": f"127.0.0.1:{upstream_port}",
            "TLS_CERTIFICATE": str(tls.chain),
            "TLS_CERTIFICATE_KEY": str(tls.key),
        }
        site = directory / "asgi_chat.conf"
        site.write_text(render(values))
        self.conf = directory / "nginx.conf"
        self.conf.write_text(MAIN_CONF.format(dir=directory, proxy=PROXY_ADDRESS, site=site))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}"

    def start(self) -> Nginx:
        nginx = program("nginx", "nginx", "/usr/sbin/nginx")
        # -p: the prefix for relative paths; -e: the error log before the configuration is read
        # (else nginx opens /var/log/nginx/error.log); daemon off: the test owns the process.
        command = [nginx, "-p", str(self.directory), "-c", str(self.conf), "-e", str(self.directory / "error.log")]
        subprocess.run([*command, "-t", "-q"], check=True, capture_output=True, timeout=TIMEOUT)
        self.process = subprocess.Popen([*command, "-g", "daemon off;"])
        wait_for_port(self.https_port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nginx's fast shutdown
            self.process.wait(timeout=TIMEOUT)
        self.process = None

    def error_log(self) -> str:
        return (self.directory / "error.log").read_text(errors="replace")


@dataclass
class Site:
    app: Server
    nginx: Nginx
    tls: Tls


@contextlib.contextmanager
def site(directory: Path, tls: Tls, *app_options: str) -> Iterator[Site]:
    """``python -m asgi_chat`` on a free port, behind nginx running docs/deploy/nginx.conf."""
    port = free_port()
    command = [sys.executable, "-m", "asgi_chat", "--port", str(port), *app_options]
    with Server(command, port, directory / "app.log") as app:
        nginx = Nginx(directory, port, tls).start()
        try:
            yield Site(app, nginx, tls)
        finally:
            nginx.stop()
        # Nothing went wrong on nginx's side either (it logs a failed upstream connection, a
        # timeout or a bad directive at [warn] or above).
        assert re.findall(r"\[(?:warn|error|crit|alert|emerg)\].*", nginx.error_log()) == []


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> Iterator[Site]:
    """The deployment as documented: the app trusts nginx's address, and only that."""
    with site(tmp_path_factory.mktemp("trusted"), tls, "--forwarded-allow-ips", PROXY_ADDRESS) as deployed:
        yield deployed


# --- clients -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def clients(
    deployed: Site, addresses: list[str], origin: str | None = None
) -> AsyncIterator[tuple[list[ClientConnection], list[InvalidStatus]]]:
    """One WebSocket to ``/ws`` through nginx from each address, all at once: (accepted, refused).
    Every one is open until the block ends; other failures fail the test."""
    context = deployed.tls.client_context()

    async def one(address: str) -> ClientConnection:
        uri = f"{deployed.nginx.wss}/ws"
        sent = Origin(origin) if origin is not None else None
        return await connect(uri, ssl=context, origin=sent, local_addr=(address, 0), open_timeout=TIMEOUT)

    async with asyncio.timeout(3 * TIMEOUT):
        outcomes = await asyncio.gather(*(one(address) for address in addresses), return_exceptions=True)
    accepted = [outcome for outcome in outcomes if isinstance(outcome, ClientConnection)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, InvalidStatus)]
    try:
        failures = [out for out in outcomes if isinstance(out, BaseException) and not isinstance(out, InvalidStatus)]
        assert failures == [], failures[:3]
        yield accepted, refused
    finally:
        async with asyncio.timeout(3 * TIMEOUT):
            await asyncio.gather(*(ws.close() for ws in accepted))


def users(count: int) -> list[str]:
    return [f"127.0.1.{n}" for n in range(1, count + 1)]


async def echo_each(connections: list[ClientConnection]) -> None:
    """A round trip on every connection: each is open end to end, up to the app."""
    await asyncio.gather(*(ws.send("ping") for ws in connections))
    assert await asyncio.gather(*(recv(ws) for ws in connections)) == ["Message text was: ping"] * len(connections)


# --- the file ----------------------------------------------------------------------------------


def test_the_envsubst_command_fills_in_every_placeholder_and_nothing_else() -> None:
    text = SITE_CONF.read_text()
    assert placeholders(text) == set(PLACEHOLDERS)
    assert placeholders(listed(text)) == set(PLACEHOLDERS)
    rendered = render(dict.fromkeys(PLACEHOLDERS, "filled"))
    assert placeholders(rendered) == set()
    # nginx's own variables survive (envsubst without the list would empty them).
    for variable in ("$http_upgrade", "$asgi_chat_connection", "$http_host", "$remote_addr", "$scheme", "$host"):
        assert variable in rendered


def test_nginx_timeouts_outlast_uvicorns_keepalive() -> None:
    """The file's reasoning, checked against uvicorn's defaults: nginx must never be the one that
    closes a live WebSocket, and should leave a dead one to uvicorn's ping."""
    config = uvicorn.Config("asgi_chat:app")
    assert config.ws_ping_interval is not None
    assert config.ws_ping_timeout is not None
    keepalive = config.ws_ping_interval + config.ws_ping_timeout  # 20 s + 20 s
    text = SITE_CONF.read_text()
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        seconds = re.search(rf"^\s*{directive} (\d+)s;", text, re.MULTILINE)
        assert seconds is not None, directive
        assert int(seconds[1]) > keepalive


# --- TLS and plain HTTP ---------------------------------------------------------------------------


def test_the_certificate_chain_verifies_against_the_test_ca(trusted: Site) -> None:
    address = ("127.0.0.1", trusted.nginx.https_port)
    with (
        socket_to(address) as raw,
        trusted.tls.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        # Verified up to the root, which nginx does not send: the intermediate came from nginx.
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        certificate = tls.getpeercert()
        assert certificate is not None
        assert ("IP Address", "127.0.0.1") in certificate["subjectAltName"]
    # The same handshake without the test CA fails: the trust comes from the CA, nothing else.
    with socket_to(address) as raw, pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


@contextlib.contextmanager
def socket_to(address: tuple[str, int]) -> Iterator[socket.socket]:
    with socket.create_connection(address, timeout=TIMEOUT) as raw:
        yield raw


def test_plain_http_redirects_to_https(trusted: Site) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", trusted.nginx.http_port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/echo?x=1")
        response = connection.getresponse()
        # $host has no port: the redirect goes to https's default port, 443, as in production.
        assert (response.status, response.getheader("location")) == (301, "https://127.0.0.1/echo?x=1")
    finally:
        connection.close()


# --- a browser -----------------------------------------------------------------------------------


def test_the_chat_page_loads_over_https_and_chats_over_wss(trusted: Site, tmp_path: Path) -> None:
    home = nss_home(tmp_path, trusted.tls)
    chromium = program("chromium", "chromium")
    with sync_playwright() as playwright:
        # HOME points Chromium at the NSS database that trusts the test CA. No ignore_https_errors:
        # with a certificate it did not trust, the page would not load at all.
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, env={**os.environ, "HOME": str(home)}
        )
        try:
            context = browser.new_context()
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            sockets = record_sockets(page)
            page.goto(trusted.nginx.origin + "/")
            expect_state(page, "connected")
            send(page, "hello through nginx")
            expect(page.locator("#messages li")).to_have_text(
                ["You wrote: hello through nginx", re.compile(r"Client #\d+ says: hello through nginx")],
                timeout=TIMEOUT_MS,
            )
            # The page's own origin (https, port included) passed the origin check through nginx.
            assert [re.sub(r"\d+$", "ID", url) for url in sockets] == [f"{trusted.nginx.wss}/ws/ID"]
            context.close()
        finally:
            browser.close()


def nss_home(directory: Path, tls: Tls) -> Path:
    """A home directory whose NSS database (Chromium's certificate store on Linux) trusts the CA."""
    certutil = program("certutil", "libnss3-tools")
    home = directory / "home"
    database = f"sql:{home / '.pki' / 'nssdb'}"
    (home / ".pki" / "nssdb").mkdir(parents=True)
    for arguments in (
        ["-N", "--empty-password"],
        ["-A", "-t", "C,,", "-n", "asgi_chat test CA", "-i", str(tls.ca)],  # C: a CA for TLS servers
    ):
        subprocess.run([certutil, "-d", database, *arguments], check=True, capture_output=True, timeout=TIMEOUT)
    return home


# --- the origin check and the per-address limit through the proxy ----------------------------------


async def test_the_origin_check_holds_through_the_proxy(trusted: Site) -> None:
    async with clients(trusted, ["127.0.1.1"], origin=trusted.nginx.origin) as (accepted, refused):
        assert (len(accepted), len(refused)) == (1, 0)  # the page's own origin, https and port
    async with clients(trusted, ["127.0.1.1"], origin="https://evil.example") as (accepted, refused):
        assert (len(accepted), [error.response.status_code for error in refused]) == (0, [403])
    assert "closed with 1008: origin not allowed: https://evil.example" in trusted.app.output()


async def test_each_user_counts_as_their_own_address(trusted: Site) -> None:
    async with clients(trusted, users(USERS)) as (accepted, refused):
        assert (len(accepted), len(refused)) == (USERS, 0)
        await echo_each(accepted)
    # uvicorn took each client's address from nginx's X-Forwarded-For (its access log shows it).
    seen = set(re.findall(r"(127\.0\.1\.\d+):\d+ - \"WebSocket /ws\" \[accepted\]", trusted.app.output()))
    assert seen == set(users(USERS))
    assert PROXY_WARNING not in trusted.app.output()

    # One address still gets no more than its share.
    async with clients(trusted, [CROWDED] * PER_ADDRESS) as (accepted, refused):
        assert (len(accepted), len(refused)) == (PER_ADDRESS, 0)
        async with clients(trusted, [CROWDED]) as (more, refused_more):
            assert more == []
            (response,) = (error.response for error in refused_more)
    # A refusal before accept is an HTTP response, through nginx as it left the app (uvicorn
    # offers the denial-response extension): 503, when to try again, and the reason the app logs.
    reason = "too many open connections from your address"
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "5")
    assert bytes(response.body or b"") == f"{reason}\n".encode()
    assert f"{CROWDED}:0 /ws closed with 1013: {reason}" in trusted.app.output()


async def test_without_forwarded_allow_ips_the_app_says_what_to_set(tmp_path: Path, tls: Tls) -> None:
    with site(tmp_path, tls) as deployed:
        # The scheme nginx forwards is ignored too: the page's own https:// origin looks foreign.
        async with clients(deployed, ["127.0.1.1"], origin=deployed.nginx.origin) as (accepted, refused):
            assert (len(accepted), len(refused)) == (0, 1)
        # Every user counts as nginx's one address: the per-address limit is reached at once.
        async with clients(deployed, users(USERS)) as (accepted, refused):
            assert (len(accepted), len(refused)) == (PER_ADDRESS, USERS - PER_ADDRESS)
        log = deployed.app.output()
    warnings = [line for line in log.splitlines() if PROXY_WARNING in line]
    assert len(warnings) == 1, warnings  # once per process, however many handshakes
    assert f"--forwarded-allow-ips {PROXY_ADDRESS}" in warnings[0]
    assert "127.0.1." not in warnings[0]  # the peer's address only, not what X-Forwarded-For says
