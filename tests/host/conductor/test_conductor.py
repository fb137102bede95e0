"""The conductor's MCP tools, token gate and path containment (images/conductor), with the SDK's own client."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import urllib.error
import urllib.request

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .conftest import PASSWORD, TOKEN

TOOLS = {"delegate_task", "abort_task", "read_project_file", "list_project_files", "get_project_status"}


async def _session(url: str, work, token: str = TOKEN):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60, trust_env=False) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        return await work(client)


def call(conductor, work, **kwargs):
    return run_async(lambda: _session(conductor.url, work, **kwargs))


def run_async(function):
    """anyio.run on a private event loop: asyncio.run would leave the main thread without a current
    loop, which breaks later tests (Pulumi's mocks) that call asyncio.get_event_loop()."""
    import anyio

    return anyio.run(function, backend_options={"loop_factory": asyncio.new_event_loop})


def tool(conductor, name, arguments=None):
    return call(conductor, lambda client: client.call_tool(name, arguments or {}))


def test_the_tools_are_listed(live_conductor):
    tools = call(live_conductor, lambda client: client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", f"Bearer {hashlib.sha256(TOKEN.encode()).hexdigest()}"],
)
def test_a_wrong_or_missing_token_gets_401(live_conductor, header):
    request = urllib.request.Request(
        f"{live_conductor.url}/mcp",
        method="POST",
        data=b"{}",
        headers={"Content-Type": "application/json", **({"Authorization": header} if header else {})},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"] == 'Bearer realm="conductor"'


def test_the_sdk_client_with_a_wrong_token_is_refused(live_conductor):
    # The SDK reports the 401 as a generic error response (the raw status: the test above).
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises no narrower type for a 401
        call(live_conductor, lambda client: client.list_tools(), token="wrong")


def test_health_is_open(live_conductor):
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{live_conductor.url}/health") as answer:
        assert answer.status == 200


def test_delegate_task_reuses_one_session_and_returns_the_answer(live_conductor, fake_opencode):
    first = tool(live_conductor, "delegate_task", {"prompt": "MARKER=one"})
    second = tool(live_conductor, "delegate_task", {"prompt": "MARKER=two"})
    assert first.is_error is False, first
    assert first.structured_content["answer"] == "Executor said: MARKER=one"
    assert first.structured_content["tools_used"] == ["executor_run_code"]
    assert second.structured_content["session_id"] == first.structured_content["session_id"] == "ses_1"
    assert [s["title"] for s in fake_opencode.sessions] == ["conductor"]
    messages = [r for r in fake_opencode.requests if r[0] == "POST" and r[1].endswith("/message")]
    assert [m[2]["parts"] for m in messages] == [
        [{"type": "text", "text": "MARKER=one"}],
        [{"type": "text", "text": "MARKER=two"}],
    ]


def test_an_earlier_conductor_session_is_found_again(live_conductor, fake_opencode):
    fake_opencode.sessions.append({"id": "ses_old", "title": "conductor", "time": {"updated": 5}})
    fake_opencode.sessions.append({"id": "ses_other", "title": "something else", "time": {"updated": 9}})
    answer = tool(live_conductor, "delegate_task", {"prompt": "hi"})
    assert answer.structured_content["session_id"] == "ses_old"


def test_abort_task_stops_a_running_task(live_conductor, fake_opencode):
    fake_opencode.answer_delay_s = 20

    async def work(client):
        task = asyncio.create_task(client.call_tool("delegate_task", {"prompt": "long"}))
        await asyncio.sleep(1)
        abort = await _session(live_conductor.url, lambda other: other.call_tool("abort_task", {}))
        return abort, await task

    abort, delegated = call(live_conductor, work)
    assert abort.structured_content["aborted"] is True and abort.structured_content["was_running"] is True
    assert delegated.is_error is True and "MessageAbortedError" in delegated.content[0].text


def test_read_project_file_reads_inside_and_refuses_outside(live_conductor):
    inside = tool(live_conductor, "read_project_file", {"path": "src/app.py"})
    assert inside.structured_content["text"] == "print('hello')\n"
    assert tool(live_conductor, "read_project_file", {"path": "link-in"}).structured_content["text"] == "# demo\n"
    for bad in (
        "../outside.txt",
        "/etc/passwd",
        "link-out",
        "dir-out/outside.txt",
        "src/../../outside.txt",
        "missing.txt",
        "src",
    ):
        refused = tool(live_conductor, "read_project_file", {"path": bad})
        assert refused.is_error is True, bad
        assert "secret outside" not in refused.content[0].text


def test_list_project_files(live_conductor):
    top = tool(live_conductor, "list_project_files", {}).structured_content["entries"]
    assert {"src/", "README.md", "link-out", "link-in", "dir-out"} == set(top)
    tree = tool(live_conductor, "list_project_files", {"path": ".", "recursive": True}).structured_content["entries"]
    assert "src/app.py" in tree and not any("outside" in e for e in tree)
    assert tool(live_conductor, "list_project_files", {"path": "src"}).structured_content["entries"] == ["src/app.py"]
    assert tool(live_conductor, "list_project_files", {"path": "dir-out"}).is_error is True
    assert tool(live_conductor, "list_project_files", {"path": ".."}).is_error is True


def test_get_project_status_reports_git(live_conductor, project):
    assert tool(live_conductor, "get_project_status").structured_content["git"] is False
    git = ["git", "-C", str(project), "-c", "user.name=T", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first commit"], check=True)
    status = tool(live_conductor, "get_project_status").structured_content
    assert status["git"] is True and status["branch"].startswith("main")
    assert [c["subject"] for c in status["recent_commits"]] == ["first commit"]
    assert any(line.endswith("src/") for line in status["changes"])
    assert status["task_running"] is False


def test_the_fake_rejects_a_wrong_password_so_the_conductor_sends_the_right_one(fake_opencode):
    from conductor_service.opencode_api import OpenCodeClient, OpenCodeError

    with pytest.raises(OpenCodeError, match="401"):
        OpenCodeClient(fake_opencode.url, "wrong").session()
    assert OpenCodeClient(fake_opencode.url, PASSWORD).session() == "ses_1"


def test_settings_are_checked():
    from conductor_service.settings import ConfigError, load_settings

    good = {
        "CONDUCTOR_TOKEN_SHA256": "a" * 64,
        "CONDUCTOR_OPENCODE_URL": "http://workspace-web:4096",
        "CONDUCTOR_OPENCODE_PASSWORD": "pw",
    }
    assert load_settings(good).opencode_url == "http://workspace-web:4096"
    for key, value in (
        ("CONDUCTOR_TOKEN_SHA256", "plain-token"),
        ("CONDUCTOR_OPENCODE_URL", "file:///etc"),
        ("CONDUCTOR_OPENCODE_PASSWORD", ""),
    ):
        with pytest.raises(ConfigError, match=key):
            load_settings({**good, key: value})
