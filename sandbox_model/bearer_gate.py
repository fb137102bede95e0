"""The bearer-token gate of the executors and the conductor, and the digest the stack gives them.

A service holds only its token's SHA-256 (``token_digest``), never the token. The gate hashes what a
request presents in ``Authorization: Bearer <token>`` and compares the digests with
hmac.compare_digest: constant-time, and blind to the token's length. Knowing the digest gains
nothing: a request presenting it is hashed again.

The stack (``components/executors.py``, ``components/conductor.py``) imports this module; the
executor and conductor images carry byte-for-byte copies (``images/executor/executor_service/
bearer_gate.py``, ``images/conductor/conductor_service/bearer_gate.py``), since an image's build
context is its own directory. Edit only ``sandbox_model/bearer_gate.py``, then refresh the copies
with ``.venv/bin/python scripts/sync-contract --write``; tests/docs/test_contract_copies.py fails
while they differ. Standard library only (a plain ASGI middleware), and nothing but this file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def token_digest(token: str) -> str:
    """What a token-checking service gets instead of the token: its SHA-256 (of the UTF-8), in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def authorized(header: bytes, digest: bytes) -> bool:
    """Whether an ``Authorization`` header value presents the token whose SHA-256 is ``digest``."""
    scheme, _, presented = header.partition(b" ")
    presented = presented.strip()
    if scheme.lower() != b"bearer" or not presented:
        return False
    return hmac.compare_digest(hashlib.sha256(presented).digest(), digest)


class BearerTokenGate:
    """ASGI middleware: 401 for an HTTP request without the token, except on ``public_paths``.

    ``token_sha256`` is the token's digest in hex; ``realm`` goes into ``WWW-Authenticate``; ``hint``
    says, in the JSON body's ``error``, what to present. Non-HTTP scopes (the lifespan) pass.
    """

    def __init__(
        self, app: ASGIApp, token_sha256: str, realm: str, hint: str, public_paths: Iterable[str] = ("/health",)
    ):
        self.app = app
        self._digest = bytes.fromhex(token_sha256)
        self._public = frozenset(public_paths)
        self._body = json.dumps({"error": f"missing or wrong bearer token ({hint})"}).encode()
        self._challenge = f'Bearer realm="{realm}"'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self._public
            or authorized(_header(scope, b"authorization"), self._digest)
        ):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._body)).encode()),
                    (b"www-authenticate", self._challenge),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._body})


def _header(scope: Scope, name: bytes) -> bytes:
    """The first value of header ``name`` (lower case), or b""."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return b""
