"""The workspace's OpenCode server API (OpenCode 1.18.34, ``opencode serve``; its OpenAPI is at ``/doc``).

- ``GET /session``, ``POST /session {title}``: the conductor's one persistent session, found again by
  its title after a restart;
- ``POST /session/{id}/message {parts: [{type: text, text}]}``: the prompt; answers when the agent's
  turn is over with ``{info, parts}`` (the assistant message);
- ``POST /session/{id}/abort``: stops the running turn.

HTTP Basic with user ``opencode`` and the web password. Standard library only; calls block, so the
MCP tools run them in a worker thread.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

SESSION_TITLE = "conductor"


class OpenCodeError(RuntimeError):
    pass


class OpenCodeClient:
    def __init__(self, base_url: str, password: str, title: str = SESSION_TITLE):
        self.base_url = base_url.rstrip("/")
        self._auth = "Basic " + base64.b64encode(f"opencode:{password}".encode()).decode()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.title = title
        self.session_id: str | None = None

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": self._auth, "Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            raise OpenCodeError(f"OpenCode answered {method} {path} with {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise OpenCodeError(f"OpenCode ({self.base_url}) is unreachable: {exc}") from None
        return json.loads(raw) if raw.strip() else None

    def session(self) -> str:
        """The conductor's session: the one created before (by this process or, by title, an earlier one)."""
        if self.session_id is None:
            sessions = self.call("GET", "/session") or []
            ours = [
                s for s in sessions if isinstance(s, dict) and s.get("title") == self.title and not s.get("parentID")
            ]
            if ours:
                ours.sort(key=lambda s: (s.get("time") or {}).get("updated", 0), reverse=True)
                self.session_id = ours[0]["id"]
            else:
                self.session_id = self.call("POST", "/session", {"title": self.title})["id"]
        return self.session_id

    def prompt(self, text: str, timeout: float) -> dict:
        session = self.session()
        answer = self.call(
            "POST", f"/session/{session}/message", {"parts": [{"type": "text", "text": text}]}, timeout=timeout
        )
        if not isinstance(answer, dict):
            raise OpenCodeError(f"OpenCode returned no message for session {session}")
        info, parts = answer.get("info") or {}, answer.get("parts") or []
        texts = [p.get("text", "") for p in parts if p.get("type") == "text" and not p.get("synthetic")]
        tools = self._tools_of_turn(session, info.get("parentID"), parts)
        error = info.get("error")
        return {
            "session_id": session,
            "answer": "\n".join(t for t in texts if t).strip(),
            "tools_used": [t for t in tools if t],
            "finish": info.get("finish"),
            "error": json.dumps(error)[:2000] if error else None,
        }

    def _tools_of_turn(self, session: str, user_message: str | None, final_parts: list) -> list[str]:
        """The tools the turn called: every assistant message answering the prompt (one per step)."""
        try:
            messages = self.call("GET", f"/session/{session}/message") if user_message else None
        except OpenCodeError:
            messages = None
        if not isinstance(messages, list):
            return [p.get("tool") for p in final_parts if p.get("type") == "tool" and p.get("tool")]
        return [
            part.get("tool")
            for message in messages
            if (message.get("info") or {}).get("role") == "assistant"
            and (message.get("info") or {}).get("parentID") == user_message
            for part in message.get("parts") or []
            if part.get("type") == "tool" and part.get("tool")
        ]

    def abort(self) -> dict:
        self.session()
        aborted = self.call("POST", f"/session/{self.session_id}/abort", {})
        return {"session_id": self.session_id, "aborted": bool(aborted)}
