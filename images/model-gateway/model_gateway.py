"""Model gateway: the workspace's only way to the model, and the only holder of the model API key.

The workspace (OpenCode) sends its OpenAI-API requests here with no key of its own; the gateway
removes whatever ``Authorization`` the client sent, adds ``Authorization: Bearer <key>``, forwards
the request to the one configured upstream and streams the response back unmodified (server-sent
events arrive as the upstream sends them). Standard library only.

Framing: one request per connection, ``Connection: close`` towards both sides. A request is
parsed strictly (a request line and header fields as RFC 9112 writes them, nothing folded, no bare
CR or LF, one ``Content-Length`` and no ``Transfer-Encoding``) and rebuilt from what was parsed, so
nothing the client wrote reaches the upstream as a header of its own making. Only origin-form
targets (``/v1/...``) under the upstream's base path are forwarded; an absolute URI, ``CONNECT``,
dot segments or encoded slashes are refused before any upstream connection is made. The response
body is relayed byte for byte; its framing (``Content-Length``, chunked, or the end of the
connection) is followed only to know where it ends.

Environment
    MODEL_GATEWAY_UPSTREAM   the upstream's OpenAI-compatible base URL, ``http://`` or ``https://``
                             (e.g. ``http://opencode-sandbox-ci-model:8000/v1``), required. Requests
                             are forwarded under its path only.
    MODEL_GATEWAY_API_KEY    the key sent upstream (``Authorization: Bearer <key>``); empty or
                             unset: no ``Authorization`` at all (an endpoint that wants no key).
    MODEL_GATEWAY_PROXY      optional ``http://host:port`` of the HTTP proxy the upstream is
                             reached through (the stack's egress gateway): absolute-form requests
                             for ``http://``, ``CONNECT`` and then TLS for ``https://``.
    MODEL_GATEWAY_PORT       the port to listen on (default 8000; 0 picks a free one, announced in
                             the startup log line).
    MODEL_GATEWAY_HOST       the address to bind (default 0.0.0.0).
    MODEL_GATEWAY_MAX_CONNECTIONS  connections served at once (default 32); more get 503.

TLS to an ``https://`` upstream is verified against the image's system CA store
(``ca-certificates``) with host name checking.

``GET /model-gateway/health`` is answered by the gateway itself (the container's healthcheck) and
says nothing about the upstream. Every request is logged as one JSON line on stdout (method, path
without the query, status, upstream status, response bytes, duration); headers never are.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

HEALTH_PATH = "/model-gateway/health"
DEFAULT_PORT = 8000
#: Longest request line plus header block accepted from the client (and from the upstream).
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
#: Largest request body accepted (OpenCode's requests carry the conversation: a few MB at most).
MAX_BODY_BYTES = 64 * 1024 * 1024
#: How long a client may take to send its request head, and to send more of its body.
CLIENT_TIMEOUT_S = 30.0
UPSTREAM_CONNECT_TIMEOUT_S = 10.0
#: How long the upstream may stay silent (a model thinking before its first token counts).
UPSTREAM_IDLE_TIMEOUT_S = 600.0
RELAY_CHUNK_BYTES = 64 * 1024
ALLOWED_METHODS = frozenset({"GET", "POST"})

#: Header fields that belong to one connection (RFC 9110 7.6.1), never forwarded either way, and
#: the fields the gateway sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
SET_BY_GATEWAY = frozenset({"authorization", "host", "content-length", "expect"})

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: A field value: visible ASCII, space, tab and obs-text; no other control byte (CR, LF, NUL...).
_FIELD_VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")
#: An origin-form target: RFC 3986 path and query characters and %XX escapes only.
_ORIGIN_FORM = re.compile(
    r"^/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*"
    r"(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?$"
)
_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
_API_KEY = re.compile(r"^[\x21-\x7e]+$")
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([1-5][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?$")


class ConfigError(ValueError):
    """A bad setting; the message names the variable and the fix."""


class RequestRefused(Exception):
    """A client request the gateway does not forward, answered with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class UpstreamError(Exception):
    """The upstream could not be reached or answered with something that is not HTTP."""


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def _endpoint(variable: str, url: str, schemes: tuple[str, ...]) -> tuple[Endpoint, str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname or ""  # "" (no host) fails _HOST below
    if (
        parts.scheme not in schemes
        or not _HOST.match(host)
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or port == -1
        or (parts.netloc.lower() != host and port is None)
    ):
        raise ConfigError(
            f"{variable}={url!r} is not a {' or '.join(s + '://' for s in schemes)} URL whose host is "
            "a name or an IPv4 address (no user, query or fragment). Fix: e.g. "
            f"{schemes[0]}://opencode-sandbox-ci-model:8000{'/v1' if variable.endswith('UPSTREAM') else ''}"
        )
    default = 443 if parts.scheme == "https" else 80
    return Endpoint(parts.scheme, host, port or default), parts.path


@dataclass(frozen=True)
class GatewaySettings:
    upstream: Endpoint
    #: The upstream's base path, e.g. ``/v1``: only requests under it are forwarded.
    base_path: str
    api_key: str | None = field(default=None, repr=False)
    proxy: Endpoint | None = None
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    max_connections: int = 32

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GatewaySettings:
        upstream_url = environ.get("MODEL_GATEWAY_UPSTREAM", "")
        if not upstream_url:
            raise ConfigError(
                "MODEL_GATEWAY_UPSTREAM is not set. Fix: set it to the upstream's base URL, "
                "e.g. http://opencode-sandbox-ci-model:8000/v1"
            )
        upstream, path = _endpoint("MODEL_GATEWAY_UPSTREAM", upstream_url, ("http", "https"))
        base_path = "/" + path.strip("/") if path.strip("/") else "/"
        if not _ORIGIN_FORM.match(base_path) or "%" in base_path or _has_dot_segment(base_path):
            raise ConfigError(
                f"MODEL_GATEWAY_UPSTREAM={upstream_url!r}: its path {path!r} is not a plain path. "
                "Fix: give a base URL such as http://host:8000/v1"
            )
        api_key = environ.get("MODEL_GATEWAY_API_KEY") or None
        if api_key is not None and not _API_KEY.match(api_key):
            raise ConfigError(
                "MODEL_GATEWAY_API_KEY holds spaces or control characters, so it cannot be sent as a "
                "bearer token. Fix: use a key of visible ASCII characters only"
            )
        proxy = None
        if environ.get("MODEL_GATEWAY_PROXY"):
            proxy, proxy_path = _endpoint("MODEL_GATEWAY_PROXY", environ["MODEL_GATEWAY_PROXY"], ("http",))
            if proxy_path not in ("", "/"):
                raise ConfigError(
                    f"MODEL_GATEWAY_PROXY={environ['MODEL_GATEWAY_PROXY']!r} has a path. "
                    "Fix: give http://host:port only"
                )
        port = _integer(environ, "MODEL_GATEWAY_PORT", DEFAULT_PORT, 0, 65535)
        max_connections = _integer(environ, "MODEL_GATEWAY_MAX_CONNECTIONS", 32, 1, 1024)
        return cls(
            upstream=upstream,
            base_path=base_path,
            api_key=api_key,
            proxy=proxy,
            host=environ.get("MODEL_GATEWAY_HOST", "0.0.0.0"),
            port=port,
            max_connections=max_connections,
        )


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name}={raw!r} is not an integer in {low}..{high}. Fix: set a number in that range")
    return int(raw)


# --- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientRequest:
    method: str
    #: The origin-form target as the client sent it (path and query), already validated.
    target: str
    #: (name, value) in the order received, names as sent.
    headers: tuple[tuple[str, str], ...]
    content_length: int
    expect_continue: bool = False

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


def _has_dot_segment(path: str) -> bool:
    return any(unquote(segment) in (".", "..") for segment in path.split("/"))


def _split_head(head: bytes) -> list[bytes]:
    """The lines of a head (without its final blank line), refusing a bare CR or LF anywhere."""
    lines = head.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line for line in lines):
        raise RequestRefused(400, "a bare CR or LF in the request head")
    return lines


def parse_request_head(head: bytes, base_path: str) -> ClientRequest:
    """Parse a request head (up to, not including, the blank line) and decide whether it is forwarded."""
    lines = _split_head(head)
    request_line, field_lines = lines[0], lines[1:]
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise RequestRefused(400, "the request line is not 'METHOD target HTTP/1.1'")
    raw_method, raw_target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise RequestRefused(505, "only HTTP/1.1 and HTTP/1.0 are spoken here")
    if not _TOKEN.match(raw_method):
        raise RequestRefused(400, "the method is not a token")
    method = raw_method.decode("ascii")
    if method == "CONNECT":
        raise RequestRefused(405, "CONNECT is not accepted: this gateway forwards to its one upstream only")
    if method not in ALLOWED_METHODS:
        raise RequestRefused(405, f"method {method} is not accepted (only {', '.join(sorted(ALLOWED_METHODS))})")
    try:
        target = raw_target.decode("ascii")
    except UnicodeDecodeError:
        raise RequestRefused(400, "the request target is not ASCII") from None
    if not target.startswith("/"):
        raise RequestRefused(
            400,
            "only origin-form targets (/v1/...) are accepted: this gateway forwards to its "
            "one upstream, never to a URI the client names",
        )
    if not _ORIGIN_FORM.match(target):
        raise RequestRefused(400, "the request target holds characters a path or query may not")
    path = target.split("?", 1)[0]
    if _has_dot_segment(path):
        raise RequestRefused(400, "the request path holds a '.' or '..' segment")
    if re.search(r"%(?:2[fF]|5[cC]|00)", path):
        raise RequestRefused(400, "the request path holds an encoded '/', '\\' or NUL")

    headers: list[tuple[str, str]] = []
    if len(field_lines) > MAX_HEADER_FIELDS:
        raise RequestRefused(431, f"more than {MAX_HEADER_FIELDS} header fields")
    for line in field_lines:
        if line[:1] in (b" ", b"\t"):
            raise RequestRefused(400, "folded header lines (obs-fold) are not accepted")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise RequestRefused(400, "a header field is not 'name: value'")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.match(value):
            raise RequestRefused(400, "a header field value holds a control character")
        headers.append((name.decode("ascii"), value.decode("latin-1")))

    lowered = [(name.lower(), value) for name, value in headers]
    if any(name == "transfer-encoding" for name, _ in lowered):
        raise RequestRefused(411, "Transfer-Encoding in a request is not accepted: send Content-Length")
    lengths = [value for name, value in lowered if name == "content-length"]
    if len(lengths) > 1:
        raise RequestRefused(400, "more than one Content-Length")
    if lengths and not lengths[0].isdigit():
        raise RequestRefused(400, "Content-Length is not a number")
    content_length = int(lengths[0]) if lengths else 0
    if content_length > MAX_BODY_BYTES:
        raise RequestRefused(413, f"the request body exceeds {MAX_BODY_BYTES} bytes")
    expect = [value.lower() for name, value in lowered if name == "expect"]
    if expect and expect != ["100-continue"]:
        raise RequestRefused(417, "only 'Expect: 100-continue' is understood")

    request = ClientRequest(
        method=method,
        target=target,
        headers=tuple(headers),
        content_length=content_length,
        expect_continue=bool(expect),
    )
    if request.path == HEALTH_PATH:
        return request
    prefix = base_path.rstrip("/") + "/"
    if not (path == base_path or path.startswith(prefix)):
        raise RequestRefused(404, f"only paths under {base_path} are forwarded")
    return request


def upstream_head(request: ClientRequest, settings: GatewaySettings) -> bytes:
    """The request head sent upstream: the client's end-to-end fields, then the gateway's own."""
    connection_named = {
        token.strip().lower()
        for name, value in request.headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    dropped = HOP_BY_HOP | SET_BY_GATEWAY | connection_named
    upstream = settings.upstream
    target = request.target
    if settings.proxy is not None and upstream.scheme == "http":
        target = f"http://{upstream.authority}{request.target}"  # absolute-form, for the proxy
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {upstream.authority}"]
    lines += [f"{name}: {value}" for name, value in request.headers if name.lower() not in dropped]
    if request.content_length or request.method == "POST":
        lines.append(f"Content-Length: {request.content_length}")
    if settings.api_key is not None:
        lines.append(f"Authorization: Bearer {settings.api_key}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --- the response -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseHead:
    status: int
    raw_status_line: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]


def parse_response_head(head: bytes) -> ResponseHead:
    lines = head.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line for line in lines):
        raise UpstreamError("the upstream's response head holds a bare CR or LF")
    match = _STATUS_LINE.match(lines[0])
    if match is None:
        raise UpstreamError("the upstream did not answer with an HTTP/1.x status line")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name) or line[:1] in (b" ", b"\t"):
            raise UpstreamError("the upstream's response holds a malformed header field")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.match(value):
            raise UpstreamError("an upstream header value holds a control character")
        headers.append((name, value))
    return ResponseHead(status=int(match.group(1)), raw_status_line=lines[0], headers=tuple(headers))


def client_response_head(response: ResponseHead, framing: str) -> bytes:
    """The upstream's head as the client gets it: its own fields, minus the connection's, plus Connection: close.

    The body is relayed as it comes, so its framing fields stay (a chunked body keeps its
    Transfer-Encoding, and then loses a Content-Length that contradicts it).
    """
    named = {token.strip().lower() for value in response.values(b"connection") for token in value.split(b",")}
    dropped = {name.encode() for name in HOP_BY_HOP - {"transfer-encoding"}} | named
    if framing == "chunked":
        dropped.add(b"content-length")
    lines = [response.raw_status_line]
    lines += [name + b": " + value for name, value in response.headers if name.lower() not in dropped]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


class ChunkedTracker:
    """Follows chunked framing over raw bytes to find where the body ends; never changes a byte."""

    def __init__(self):
        self.state = "size"
        self.line = b""
        self.remaining = 0
        self.done = False

    def feed(self, data: bytes) -> int:
        """How many bytes of ``data`` belong to the body (all of them unless it ended inside)."""
        position = 0
        while position < len(data) and not self.done:
            if self.state == "data":
                take = min(self.remaining, len(data) - position)
                position += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "data-end"
                continue
            end = data.find(b"\n", position)
            if end == -1:
                self.line += data[position:]
                if len(self.line) > 4096:
                    raise UpstreamError("a chunk-size or trailer line of the upstream is too long")
                return len(data)
            self.line += data[position : end + 1]
            position = end + 1
            line, self.line = self.line, b""
            if not line.endswith(b"\r\n"):
                raise UpstreamError("the upstream's chunked framing has a bare LF")
            line = line[:-2]
            if self.state == "size":
                size = line.split(b";", 1)[0].strip(b" \t")
                if not size or not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size):
                    raise UpstreamError("the upstream's chunked framing has a malformed chunk size")
                self.remaining = int(size, 16)
                self.state = "data" if self.remaining else "trailer"
            elif self.state == "data-end":
                if line:
                    raise UpstreamError("a chunk of the upstream does not end with CRLF")
                self.state = "size"
            elif self.state == "trailer" and not line:
                self.done = True
        return position


def body_framing(response: ResponseHead) -> tuple[str, int]:
    """("none" | "length" | "chunked" | "close", length) of the response body (RFC 9112 6.3)."""
    if response.status in (204, 304) or 100 <= response.status < 200:
        return "none", 0
    encodings = [
        token.strip().lower() for value in response.values(b"transfer-encoding") for token in value.split(b",")
    ]
    if encodings:
        return ("chunked", 0) if encodings[-1] == b"chunked" else ("close", 0)
    lengths = {value.strip() for value in response.values(b"content-length")}
    if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
        raise UpstreamError("the upstream sent conflicting or malformed Content-Length values")
    if lengths:
        return "length", int(next(iter(lengths)))
    return "close", 0


# --- the connection ---------------------------------------------------------------------------


def read_head(sock: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes]:
    """(head without the blank line, bytes read past it); raises EOFError when the peer closes first."""
    data = buffered
    while True:
        end = data.find(b"\r\n\r\n")
        if end != -1:
            if end > MAX_HEAD_BYTES:
                raise RequestRefused(431, f"the request head exceeds {MAX_HEAD_BYTES} bytes")
            return data[:end], data[end + 4 :]
        if len(data) > MAX_HEAD_BYTES:
            raise RequestRefused(431, f"the request head exceeds {MAX_HEAD_BYTES} bytes")
        chunk = sock.recv(RELAY_CHUNK_BYTES)
        if not chunk:
            raise EOFError("the peer closed the connection before a complete head")
        data += chunk


def error_response(status: int, message: str) -> bytes:
    reason = {
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        408: "Request Timeout",
        411: "Length Required",
        413: "Content Too Large",
        417: "Expectation Failed",
        431: "Request Header Fields Too Large",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
        505: "HTTP Version Not Supported",
    }.get(status, "Error")
    body = json.dumps(
        {"error": {"message": f"model gateway: {message}", "type": "model_gateway_error", "code": status}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head + body


def health_response() -> bytes:
    body = b'{"status":"ok"}'
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


def open_upstream(settings: GatewaySettings, tls_context: ssl.SSLContext | None) -> socket.socket:
    """A connection to the upstream, through the proxy when there is one (CONNECT for TLS)."""
    upstream = settings.upstream
    hop = settings.proxy or upstream
    try:
        sock = socket.create_connection((hop.host, hop.port), timeout=UPSTREAM_CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise UpstreamError(
            f"cannot connect to {'the proxy ' if settings.proxy else ''}{hop.host}:{hop.port}: {exc.strerror or exc}"
        ) from None
    try:
        if settings.proxy is not None and upstream.scheme == "https":
            sock.sendall(
                f"CONNECT {upstream.host}:{upstream.port} HTTP/1.1\r\nHost: {upstream.host}:{upstream.port}"
                "\r\n\r\n".encode()
            )
            try:
                head, rest = read_head(sock)
            except (EOFError, RequestRefused):
                raise UpstreamError("the proxy closed the connection or answered with no HTTP head") from None
            answer = parse_response_head(head)
            if answer.status != 200 or rest:
                raise UpstreamError(
                    f"the proxy refused the tunnel to {upstream.host}:{upstream.port} "
                    f"({answer.raw_status_line.decode('latin-1')})"
                )
        if upstream.scheme == "https":
            context = tls_context or ssl.create_default_context()
            try:
                sock = context.wrap_socket(sock, server_hostname=upstream.host)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise UpstreamError(f"TLS with {upstream.host} failed: {exc}") from None
        sock.settimeout(UPSTREAM_IDLE_TIMEOUT_S)
        return sock
    except BaseException:
        sock.close()
        raise


_log_lock = threading.Lock()


def log_line(record: Mapping[str, Any]) -> None:
    with _log_lock:
        sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stdout.flush()


class GatewayHandler(socketserver.BaseRequestHandler):
    settings: GatewaySettings
    tls_context: ssl.SSLContext | None = None
    slots: threading.BoundedSemaphore

    def handle(self) -> None:
        client: socket.socket = self.request
        started = time.monotonic()
        record: dict[str, Any] = {"method": None, "path": None}
        if not self.slots.acquire(blocking=False):
            record.update(status=503, error="too many connections")
            self._send_quietly(client, error_response(503, "too many connections at once; retry"))
            log_line(record)
            return
        try:
            record.update(self._serve(client, record))
        except RequestRefused as refused:
            record.update(status=refused.status, error=refused.message)
            self._send_quietly(client, error_response(refused.status, refused.message))
        except UpstreamError as exc:
            record.update(status=record.get("status") or 502, error=str(exc))
            if not record.get("upstream_status"):
                self._send_quietly(client, error_response(502, str(exc)))
        except TimeoutError:
            record.update(status=record.get("status") or 504, error="timed out")
            if not record.get("upstream_status"):
                self._send_quietly(client, error_response(504 if record.get("method") else 408, "timed out"))
        except EOFError as exc:
            record.update(error=str(exc))
        except OSError as exc:
            record.update(error=f"connection error: {exc.strerror or exc}")
        finally:
            self.slots.release()
            record["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            if record.get("method") is not None or record.get("error"):
                log_line(record)

    def _serve(self, client: socket.socket, record: dict[str, Any]) -> dict[str, Any]:
        client.settimeout(CLIENT_TIMEOUT_S)
        head, buffered = read_head(client)
        request = parse_request_head(head, self.settings.base_path)
        record.update(method=request.method, path=request.path)
        if len(buffered) > request.content_length:
            raise RequestRefused(400, "bytes after the request body: one request per connection")
        if request.path == HEALTH_PATH:
            client.sendall(health_response())
            return {"status": 200}
        upstream = open_upstream(self.settings, self.tls_context)
        with upstream:
            upstream.sendall(upstream_head(request, self.settings))
            if request.expect_continue and request.content_length and not buffered:
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._relay_request_body(client, upstream, request.content_length, buffered)
            return self._relay_response(client, upstream, record)

    @staticmethod
    def _relay_request_body(client: socket.socket, upstream: socket.socket, length: int, buffered: bytes) -> None:
        upstream.sendall(buffered)
        remaining = length - len(buffered)
        while remaining:
            chunk = client.recv(min(RELAY_CHUNK_BYTES, remaining))
            if not chunk:
                raise EOFError("the client closed the connection inside the request body")
            upstream.sendall(chunk)
            remaining -= len(chunk)

    def _relay_response(self, client: socket.socket, upstream: socket.socket, record: dict[str, Any]) -> dict[str, Any]:
        buffered = b""
        while True:
            try:
                head, buffered = read_head(upstream, buffered)
            except (EOFError, RequestRefused) as exc:
                raise UpstreamError(f"the upstream sent no complete response head ({exc})") from None
            response = parse_response_head(head)
            if response.status == 101:
                raise UpstreamError("the upstream switched protocols, which was never asked for")
            if response.status >= 200:
                break  # 1xx interim answers (the gateway sent no Expect upstream) are dropped
        framing, length = body_framing(response)
        client.sendall(client_response_head(response, framing))
        record.update(status=response.status, upstream_status=response.status)
        sent = self._relay_body(client, upstream, framing, length, buffered)
        return {"status": response.status, "upstream_status": response.status, "bytes": sent}

    @staticmethod
    def _relay_body(client: socket.socket, upstream: socket.socket, framing: str, length: int, buffered: bytes) -> int:
        tracker = ChunkedTracker() if framing == "chunked" else None
        remaining = length
        sent = 0
        data = buffered
        while framing != "none":
            if data:
                if tracker is not None:
                    data = data[: tracker.feed(data)]
                elif framing == "length":
                    data = data[:remaining]
                    remaining -= len(data)
                client.sendall(data)  # as it comes: server-sent events stream through
                sent += len(data)
            if (tracker is not None and tracker.done) or (framing == "length" and remaining == 0):
                break
            data = upstream.recv(RELAY_CHUNK_BYTES)
            if not data:
                if framing != "close":
                    raise UpstreamError("the upstream closed the connection inside the response body")
                break
        return sent

    @staticmethod
    def _send_quietly(client: socket.socket, data: bytes) -> None:
        try:
            client.sendall(data)
        except OSError:
            pass

    def finish(self) -> None:
        try:
            self.request.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class GatewayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(settings: GatewaySettings, tls_context: ssl.SSLContext | None = None) -> GatewayServer:
    """A bound (not yet serving) gateway; ``server.server_address[1]`` is the real port."""
    handler = type(
        "BoundGatewayHandler",
        (GatewayHandler,),
        {
            "settings": settings,
            "tls_context": tls_context,
            "slots": threading.BoundedSemaphore(settings.max_connections),
        },
    )
    return GatewayServer((settings.host, settings.port), handler)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # PID 1 without an init ignores SIGTERM unless it handles it: `docker stop` would wait its timeout.
    raise SystemExit(0)


def main(environ: Mapping[str, str] = os.environ) -> int:
    try:
        settings = GatewaySettings.from_env(environ)
    except ConfigError as exc:
        print(f"model-gateway: {exc}", file=sys.stderr)
        return 64
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    server = make_server(settings)
    log_line(
        {
            "event": "listening",
            "host": settings.host,
            "port": server.server_address[1],
            "upstream": f"{settings.upstream.scheme}://{settings.upstream.authority}{settings.base_path}",
            "proxy": f"{settings.proxy.host}:{settings.proxy.port}" if settings.proxy else None,
            "api_key": settings.api_key is not None,
        }
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
