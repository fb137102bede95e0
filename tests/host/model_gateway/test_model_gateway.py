"""The model gateway (images/model-gateway/model_gateway.py) against hostile clients, in-process on localhost.

What the workspace may send is whatever a prompt-injected agent makes it send: a key of its own,
a second ``Authorization``, CR/LF smuggled into the path or a header, an absolute URI naming another
host, ``CONNECT``, dot segments, a second request behind the first. The gateway must forward only
what it parsed, to its one upstream, with the stack's key and no other, and must refuse the rest
before it connects anywhere. Responses (server-sent events above all) must stream through unchanged.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.support.model_processes import GATEWAY_SCRIPT, DoubleProcess, GatewayProcess, load_gateway_module

KEY = "stack-model-key-0123456789"
BASE_PATH = "/v1"


@pytest.fixture(scope="module")
def gw():
    module = load_gateway_module()
    yield module
    del sys.modules[module.__name__]


# --- a scripted upstream that records the raw bytes it receives -------------------------------


@dataclass
class Upstream:
    """A TCP server: records each connection's raw request and answers with ``reply`` (bytes, or a callable)."""

    reply: object = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
    received: list[bytes] = field(default_factory=list)
    tls: ssl.SSLContext | None = None

    def __post_init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")[1:]
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.received.append(head + b"\r\n\r\n" + body)
            if callable(self.reply):
                self.reply(conn)
            else:
                conn.sendall(self.reply)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def headers(self, index: int = -1) -> list[tuple[str, str]]:
        head = self.received[index].split(b"\r\n\r\n", 1)[0].decode("latin-1")
        return [tuple(part.strip() for part in line.split(":", 1)) for line in head.split("\r\n")[1:]]

    def request_line(self, index: int = -1) -> str:
        return self.received[index].split(b"\r\n", 1)[0].decode("latin-1")

    def close(self):
        self.listener.close()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


@contextmanager
def running(gw, settings, tls_context=None, *closing):
    """The gateway served in a thread: yields its port; stops it (and closes ``closing``) afterwards."""
    server = gw.make_server(settings, tls_context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        for other in closing:
            other.close()


def through(gw, upstream_url: str, data: bytes, *closing, tls_context=None, **settings) -> bytes:
    """What the gateway, forwarding to ``upstream_url``, answers to ``data``."""
    with running(gw, settings_for(gw, upstream_url, **settings), tls_context, *closing) as port:
        return raw(port, data)


def settings_for(gw, upstream_url: str, api_key: str | None = KEY, proxy: str | None = None):
    env = {"MODEL_GATEWAY_UPSTREAM": upstream_url, "MODEL_GATEWAY_HOST": "127.0.0.1", "MODEL_GATEWAY_PORT": "0"}
    if api_key is not None:
        env["MODEL_GATEWAY_API_KEY"] = api_key
    if proxy is not None:
        env["MODEL_GATEWAY_PROXY"] = proxy
    return gw.GatewaySettings.from_env(env)


@pytest.fixture
def gateway(gw, upstream):
    with running(gw, settings_for(gw, f"http://127.0.0.1:{upstream.port}{BASE_PATH}")) as port:
        yield port


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are; everything the gateway answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def post(path: str = "/v1/chat/completions", headers: bytes = b"", body: bytes = b'{"model":"m"}') -> bytes:
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        + headers
        + b"\r\n"
        + body
    )


GET_MODELS = b"GET /v1/models HTTP/1.1\r\nHost: g\r\n\r\n"


def authorizations(upstream: Upstream) -> list[str]:
    return [value for name, value in upstream.headers() if name.lower() == "authorization"]


# --- the key: the client's is removed, the stack's added ---------------------------------------


@pytest.mark.parametrize(
    "client_auth",
    [
        b"",
        b"Authorization: Bearer the-agents-own-key\r\n",
        b"Authorization: Bearer wrong\r\nauthorization: Basic b3BlbmNvZGU6cHc=\r\nAUTHORIZATION: Bearer third\r\n",
        b"Proxy-Authorization: Basic eDp5\r\nAuthorization:Bearer no-space\r\n",
    ],
    ids=["none", "wrong", "three-of-them", "proxy-and-unspaced"],
)
def test_whatever_the_client_sends_upstream_gets_exactly_the_stack_key(gateway, upstream, client_auth):
    answer = raw(gateway, post(headers=client_auth))
    assert status_of(answer) == 200 and answer.endswith(b"{}"), answer
    assert authorizations(upstream) == [f"Bearer {KEY}"]
    assert not [name for name, _ in upstream.headers() if name.lower() == "proxy-authorization"]
    assert b"the-agents-own-key" not in upstream.received[-1] and b"b3BlbmNvZGU6cHc=" not in upstream.received[-1]


def test_an_endpoint_without_a_key_gets_no_authorization_at_all(gw, upstream):
    through(
        gw,
        f"http://127.0.0.1:{upstream.port}/v1",
        post(headers=b"Authorization: Bearer from-the-workspace\r\n"),
        api_key=None,
    )
    assert authorizations(upstream) == []


def test_host_connection_and_the_fields_connection_names_are_the_gateways(gateway, upstream):
    headers = (
        b"Host: evil.example\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
        b"Upgrade: h2c\r\nTE: trailers\r\nX-Request-Id: kept\r\nUser-Agent: ai-sdk\r\n"
    )
    raw(gateway, b"GET /v1/models HTTP/1.1\r\n" + headers + b"\r\n")
    sent = upstream.headers()
    names = [name.lower() for name, _ in sent]
    assert upstream.request_line() == "GET /v1/models HTTP/1.1"
    assert dict((n.lower(), v) for n, v in sent)["host"] == f"127.0.0.1:{upstream.port}"
    assert names.count("host") == 1 and names.count("connection") == 1
    assert ("Connection", "close") in sent
    assert not {"x-hop", "keep-alive", "upgrade", "te"} & set(names), sent
    assert ("X-Request-Id", "kept") in sent and ("User-Agent", "ai-sdk") in sent


def test_the_body_is_forwarded_byte_for_byte(gateway, upstream):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "é\r\n\r\nAuthorization: x"}]}).encode()
    raw(gateway, post(body=body))
    assert upstream.received[-1].endswith(b"\r\n\r\n" + body)
    assert ("Content-Length", str(len(body))) in upstream.headers()


# --- refused before any upstream connection ---------------------------------------------------


@pytest.fixture
def elsewhere():
    """Where an absolute URI or CONNECT would point: it must never see a connection."""
    server = Upstream()
    yield server
    server.close()


def refused_cases(elsewhere_port: int) -> list[tuple[str, bytes, int]]:
    other = f"127.0.0.1:{elsewhere_port}".encode()
    return [
        (
            "absolute-uri-elsewhere",
            b"GET http://" + other + b"/v1/models HTTP/1.1\r\nHost: " + other + b"\r\n\r\n",
            400,
        ),
        ("absolute-uri-https", b"GET https://" + other + b"/v1/models HTTP/1.1\r\nHost: gateway\r\n\r\n", 400),
        ("connect", b"CONNECT " + other + b" HTTP/1.1\r\nHost: " + other + b"\r\n\r\n", 405),
        ("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: gateway\r\n\r\n", 405),
        ("crlf-in-path", b"GET /v1/models\r\nAuthorization: Bearer stolen HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        ("space-in-path", b"GET /v1/models extra HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        ("bare-lf-header-injection", b"GET /v1/models HTTP/1.1\r\nX-A: b\nAuthorization: Bearer x\r\n\r\n", 400),
        ("bare-cr-header-injection", b"GET /v1/models HTTP/1.1\r\nX-A: b\rAuthorization: Bearer x\r\n\r\n", 400),
        ("obs-fold", b"GET /v1/models HTTP/1.1\r\nX-A: b\r\n Authorization: Bearer x\r\n\r\n", 400),
        ("nul-in-value", b"GET /v1/models HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400),
        ("space-before-colon", b"GET /v1/models HTTP/1.1\r\nAuthorization : Bearer x\r\n\r\n", 400),
        ("non-ascii-target", "GET /v1/modèls HTTP/1.1\r\nHost: g\r\n\r\n".encode(), 400),
        ("dot-dot", b"GET /v1/../health HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        ("encoded-dot-dot", b"GET /v1/%2e%2E/metrics HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        ("encoded-slash", b"GET /v1%2f..%2fmetrics HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        ("outside-the-base-path", b"GET /metrics HTTP/1.1\r\nHost: g\r\n\r\n", 404),
        ("base-path-prefix-trick", b"GET /v1evil/models HTTP/1.1\r\nHost: g\r\n\r\n", 404),
        ("fragment", b"GET /v1/models#x HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        ("trace", b"TRACE /v1/models HTTP/1.1\r\nHost: g\r\n\r\n", 405),
        ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("two-content-lengths", post(headers=b"Content-Length: 0\r\n"), 400),
        (
            "chunked-request-smuggling",
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            411,
        ),
        ("second-request-behind-the-first", post(body=b"{}") + b"GET /v1/models HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        ("negative-length", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("huge-length", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
    ]


CASE_IDS = [case[0] for case in refused_cases(1)]


@pytest.mark.parametrize("case", CASE_IDS)
def test_hostile_requests_are_refused_before_any_connection(gateway, upstream, elsewhere, case):
    _, data, expected = next(c for c in refused_cases(elsewhere.port) if c[0] == case)
    answer = raw(gateway, data)
    assert status_of(answer) == expected, answer
    assert b'"type": "model_gateway_error"' in answer and b"Connection: close" in answer
    time.sleep(0.1)
    assert upstream.connections == 0 and elsewhere.connections == 0, "a refused request reached a server"


def test_a_too_large_head_is_refused(gateway, upstream):
    answer = raw(gateway, b"GET /v1/models HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert status_of(answer) == 431 and upstream.connections == 0


def test_health_is_answered_by_the_gateway_itself(gateway, upstream):
    answer = raw(gateway, b"GET /model-gateway/health HTTP/1.1\r\nHost: g\r\n\r\n")
    assert status_of(answer) == 200 and answer.endswith(b'{"status":"ok"}')
    assert upstream.connections == 0


def test_an_unreachable_upstream_is_a_502_naming_it(gw):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    answer = through(gw, f"http://127.0.0.1:{port}/v1", GET_MODELS)
    assert status_of(answer) == 502 and f"127.0.0.1:{port}".encode() in answer


def test_a_malformed_upstream_answer_is_a_502(gw):
    bad = Upstream(reply=b"SSH-2.0-OpenSSH_9\r\n\r\n")
    assert status_of(through(gw, f"http://127.0.0.1:{bad.port}/v1", GET_MODELS, bad)) == 502


# --- responses stream back unmodified ---------------------------------------------------------

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_server_sent_events_stream_through_as_they_are_sent(gw):
    first_seen = threading.Event()
    events = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"]

    def reply(conn):
        conn.sendall(SSE_HEAD + chunk(events[0]))
        # The rest only once the client has read the first event: buffering would deadlock here.
        assert first_seen.wait(timeout=10), "the first event never reached the client"
        conn.sendall(chunk(events[1]) + chunk(events[2]) + b"0\r\n\r\n")
        time.sleep(5)  # and keep the connection open: the end of the chunked body ends the response

    upstream = Upstream(reply=reply)
    with (
        running(gw, settings_for(gw, f"http://127.0.0.1:{upstream.port}/v1"), None, upstream) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(post(body=b'{"stream":true}'))
        received = b""
        while events[0] not in received:
            received += sock.recv(65536)
        first_seen.set()
        started = time.monotonic()
        while piece := sock.recv(65536):
            received += piece
        elapsed = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    assert body == chunk(events[0]) + chunk(events[1]) + chunk(events[2]) + b"0\r\n\r\n", "the body was changed"
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert set(lines[1:]) == {
        b"Content-Type: text/event-stream",
        b"Cache-Control: no-cache",
        b"Transfer-Encoding: chunked",
        b"Connection: close",
    }
    assert elapsed < 3, "the gateway waited for the upstream to close instead of ending at the last chunk"


def test_a_content_length_body_ends_at_its_length(gw):
    body = b'{"object": "list", "data": []}'

    def reply(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(5)  # an upstream that ignores Connection: close

    upstream = Upstream(reply=reply)
    started = time.monotonic()
    answer = through(gw, f"http://127.0.0.1:{upstream.port}/v1", GET_MODELS, upstream)
    elapsed = time.monotonic() - started
    assert answer.endswith(b"\r\n\r\n" + body) and elapsed < 3


def test_a_close_delimited_body_is_relayed_to_its_end(gw):
    body = b"x" * 300_000
    upstream = Upstream(reply=b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
    answer = through(gw, f"http://127.0.0.1:{upstream.port}/v1", GET_MODELS, upstream)
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n") and answer.endswith(b"\r\n\r\n" + body)


def test_an_upstream_error_is_passed_through_unchanged(gw):
    body = b'{"error": {"message": "Authorization header wrong", "type": "authentication_error"}}'
    upstream = Upstream(
        reply=b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    answer = through(gw, f"http://127.0.0.1:{upstream.port}/v1", GET_MODELS, upstream)
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n") and b"WWW-Authenticate: Bearer" in answer
    assert answer.endswith(body)


# --- the chunked framing follower ---------------------------------------------------------------


@pytest.mark.parametrize("pieces", [1, 3, 7, 1000])
def test_the_chunked_tracker_finds_the_end_whatever_the_pieces(gw, pieces):
    body = chunk(b"hello") + b"a;ext=1\r\n0123456789\r\n" + chunk(b"x" * 300) + b"0\r\nTrailer: v\r\n\r\n"
    data = body + b"garbage after the body"
    tracker, kept = gw.ChunkedTracker(), b""
    size = max(1, len(data) // pieces)
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        kept += piece[: tracker.feed(piece)]
        if tracker.done:
            break
    assert tracker.done and kept == body


@pytest.mark.parametrize("body", [b"zz\r\nhello\r\n", b"5\r\nhelloXX\r\n", b"5\nhello\n"])
def test_the_chunked_tracker_refuses_broken_framing(gw, body):
    with pytest.raises(gw.UpstreamError):
        gw.ChunkedTracker().feed(body)


# --- through the real model double (which checks the key) -------------------------------------


@pytest.fixture
def double_upstream():
    """The model double run as its image runs it, demanding KEY."""
    double = DoubleProcess(KEY, model="m")
    yield double.port
    double.stop()


@pytest.fixture
def gateway_process(double_upstream):
    process = GatewayProcess(f"http://127.0.0.1:{double_upstream}/v1", KEY)
    yield process
    process.stop()


def call(port: int, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        method,
        path,
        body=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, response.headers, payload


def test_the_double_refuses_a_request_without_the_key(double_upstream):
    """The control: the double really checks the key, so the gateway's 200s below are the key's doing."""
    status, _, payload = call(double_upstream, "GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    assert status == 401, payload


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Bearer {KEY}x"])
def test_requests_through_the_gateway_carry_the_key_the_double_checks(gateway_process, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    status, _, payload = call(gateway_process.port, "GET", "/v1/models", headers=headers)
    assert status == 200, payload
    assert json.loads(payload)["data"][0]["id"] == "m"


def test_a_streamed_chat_completion_arrives_whole_through_the_gateway(gateway_process):
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    status, headers, payload = call(
        gateway_process.port, "POST", "/v1/chat/completions", body, {"Authorization": "Bearer placeholder"}
    )
    assert status == 200 and headers["Content-Type"] == "text/event-stream", payload
    blocks = [block for block in payload.decode().split("\n\n") if block]
    assert blocks[-1] == "data: [DONE]"
    text = "".join(
        json.loads(b[6:])["choices"][0]["delta"].get("content") or ""
        for b in blocks[:-1]
        if json.loads(b[6:])["choices"]
    )
    assert text.startswith("This is the model double")


def test_the_key_is_never_logged(gateway_process):
    call(gateway_process.port, "GET", "/v1/models", headers={"Authorization": "Bearer client-secret"})
    call(gateway_process.port, "GET", "/v1/../x")
    time.sleep(0.2)
    log = "".join(gateway_process.lines)
    assert gateway_process.requests(), log
    assert KEY not in log and "client-secret" not in log


# --- through an HTTP proxy (the egress gateway, for an external model) --------------------------


@dataclass
class Proxy:
    """A proxy that records each request line; CONNECT is tunnelled to ``tunnel_to`` whatever it names."""

    tunnel_to: int | None = None
    lines: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            line = data.split(b"\r\n", 1)[0].decode()
            self.lines.append(line)
            if not line.startswith("CONNECT "):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")
                return
            if self.tunnel_to is None:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with socket.create_connection(("127.0.0.1", self.tunnel_to)) as target:

                def pump(src, dst):
                    try:
                        while piece := src.recv(65536):
                            dst.sendall(piece)
                    except OSError:
                        pass
                    finally:
                        try:
                            dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass

                back = threading.Thread(target=pump, args=(target, conn), daemon=True)
                back.start()
                pump(conn, target)
                back.join(timeout=10)

    def close(self):
        self.listener.close()


def test_a_plain_http_upstream_is_reached_in_absolute_form_through_the_proxy(gw):
    proxy = Proxy()
    answer = through(
        gw, "http://host.docker.internal:1234/v1", GET_MODELS, proxy, proxy=f"http://127.0.0.1:{proxy.port}"
    )
    assert answer.endswith(b"proxied")
    assert proxy.lines == ["GET http://host.docker.internal:1234/v1/models HTTP/1.1"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for models.example (its own CA), made with openssl."""
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=models.example",
            "-addext",
            "subjectAltName=DNS:models.example",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def tls_upstream(certificate) -> Upstream:
    key, cert = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return Upstream(tls=context)


def test_an_https_upstream_is_tunnelled_through_the_proxy_and_verified(gw, certificate):
    upstream = tls_upstream(certificate)
    proxy = Proxy(tunnel_to=upstream.port)
    trusted = ssl.create_default_context(cafile=str(certificate[1]))
    answer = through(
        gw,
        "https://models.example/v1",
        post(headers=b"Authorization: Bearer mine\r\n"),
        proxy,
        upstream,
        tls_context=trusted,
        proxy=f"http://127.0.0.1:{proxy.port}",
    )
    assert status_of(answer) == 200 and answer.endswith(b"{}"), answer
    assert proxy.lines == ["CONNECT models.example:443 HTTP/1.1"]
    assert upstream.request_line() == "POST /v1/chat/completions HTTP/1.1"
    assert authorizations(upstream) == [f"Bearer {KEY}"] and ("Host", "models.example") in upstream.headers()


def test_an_https_upstream_whose_certificate_the_system_store_does_not_trust_gets_no_request(gw, certificate):
    upstream = tls_upstream(certificate)
    proxy = Proxy(tunnel_to=upstream.port)
    answer = through(gw, "https://models.example/v1", post(), proxy, upstream, proxy=f"http://127.0.0.1:{proxy.port}")
    assert status_of(answer) == 502 and b"TLS with models.example failed" in answer, answer
    assert upstream.received == [], "the key was sent to an unverified server"


def test_a_tunnel_the_proxy_refuses_is_a_502(gw):
    proxy = Proxy(tunnel_to=None)
    answer = through(gw, "https://models.example/v1", post(), proxy, proxy=f"http://127.0.0.1:{proxy.port}")
    assert status_of(answer) == 502 and b"refused the tunnel" in answer


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, variable",
    [
        ({}, "MODEL_GATEWAY_UPSTREAM"),
        ({"MODEL_GATEWAY_UPSTREAM": "ftp://model:8000/v1"}, "MODEL_GATEWAY_UPSTREAM"),
        ({"MODEL_GATEWAY_UPSTREAM": "http://user:pw@model:8000/v1"}, "MODEL_GATEWAY_UPSTREAM"),
        ({"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1?x=1"}, "MODEL_GATEWAY_UPSTREAM"),
        ({"MODEL_GATEWAY_UPSTREAM": "http://[::1]:8000/v1"}, "MODEL_GATEWAY_UPSTREAM"),
        ({"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1/../x"}, "MODEL_GATEWAY_UPSTREAM"),
        ({"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1", "MODEL_GATEWAY_API_KEY": "a b"}, "MODEL_GATEWAY_API_KEY"),
        (
            {"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1", "MODEL_GATEWAY_API_KEY": "a\r\nX-Injected: 1"},
            "MODEL_GATEWAY_API_KEY",
        ),
        (
            {"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1", "MODEL_GATEWAY_PROXY": "https://egress:3128"},
            "MODEL_GATEWAY_PROXY",
        ),
        (
            {"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1", "MODEL_GATEWAY_PROXY": "http://egress:3128/x"},
            "MODEL_GATEWAY_PROXY",
        ),
        ({"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1", "MODEL_GATEWAY_PORT": "80000"}, "MODEL_GATEWAY_PORT"),
    ],
)
def test_bad_settings_name_the_variable_and_the_fix(gw, env, variable):
    with pytest.raises(gw.ConfigError, match=variable) as caught:
        gw.GatewaySettings.from_env(env)
    assert "Fix:" in str(caught.value)


def test_the_program_refuses_to_start_on_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "-I", "-B", str(GATEWAY_SCRIPT)],
        capture_output=True,
        text=True,
        env={"MODEL_GATEWAY_UPSTREAM": "http://model:8000/v1", "MODEL_GATEWAY_API_KEY": "secret-part other-part"},
        timeout=30,
    )
    assert result.returncode == 64 and "MODEL_GATEWAY_API_KEY" in result.stderr
    assert "secret-part" not in result.stderr, "the key was echoed"
