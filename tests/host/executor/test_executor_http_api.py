"""The HTTP API against a real uvicorn, running real jobs on this host."""

from __future__ import annotations

import json

import pytest

from .conftest import TOKEN


def test_health_needs_no_token(anonymous):
    response = anonymous.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"],
)
def test_run_refuses_a_missing_or_wrong_token(live_server, anonymous, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = anonymous.post("/v1/run", json={"language": "sh", "source": "echo ran"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "bearer token" in response.json()["error"]
    assert live_server.runner.jobs_run == 0


def test_languages_and_mcp_need_the_token_too(anonymous):
    assert anonymous.get("/v1/languages").status_code == 401
    assert anonymous.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401


def test_languages_lists_both_with_the_limits(client):
    listing = client.get("/v1/languages").json()
    assert [entry["name"] for entry in listing["languages"]] == ["python", "sh"]
    assert all(entry["interpreter"].startswith("/") for entry in listing["languages"])
    assert listing["limits"]["max_output_bytes"] == 4096
    assert listing["limits"]["max_timeout_s"] == 20


def test_python_runs_and_reports_output_and_exit_code(client):
    result = client.post(
        "/v1/run",
        json={"language": "python", "source": "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)"},
    ).json()
    assert result["exit_code"] == 3
    assert result["stdout"] == "out\n"
    assert result["stderr"] == "err\n"
    assert result["timed_out"] is False and result["truncated"] is False
    assert 0 < result["duration_ms"] < 10_000


def test_sh_runs_with_stdin(client):
    result = client.post("/v1/run", json={"language": "sh", "source": "tr a-z A-Z", "stdin": "hello\n"}).json()
    assert (result["exit_code"], result["stdout"]) == (0, "HELLO\n")


def test_a_deadline_kill_reports_timed_out(client):
    result = client.post(
        "/v1/run", json={"language": "sh", "source": "echo started; sleep 30", "timeout_s": 0.5}
    ).json()
    assert result["timed_out"] is True
    assert result["exit_code"] == 137
    assert result["stdout"] == "started\n"
    assert 500 <= result["duration_ms"] < 5000


def test_output_past_the_requested_cap_is_cut(client):
    result = client.post(
        "/v1/run", json={"language": "python", "source": "print('x' * 5000)", "max_output_bytes": 100}
    ).json()
    assert result["stdout"] == "x" * 100
    assert result["truncated"] is True
    assert result["exit_code"] == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"\xff\xfe", 400, "not valid JSON"),
        ({"language": "cobol", "source": "x"}, 422, "language"),
        ({"language": "python"}, 422, "source: Field required"),
        ({"language": "python", "source": "x", "shell": True}, 422, "shell: Extra inputs are not permitted"),
        ({"language": "python", "source": "x", "timeout_s": 21}, 422, "timeout_s must be > 0 and <= 20"),
        ({"language": "python", "source": "x", "timeout_s": 0}, 422, "timeout_s"),
        ({"language": "python", "source": "x", "timeout_s": "5"}, 422, "timeout_s"),
        ({"language": "python", "source": "x", "max_output_bytes": 4097}, 422, "max_output_bytes"),
        ({"language": "python", "source": "x", "max_output_bytes": 1.5}, 422, "max_output_bytes"),
        ({"language": "python", "source": "x" * (256 * 1024 + 1)}, 413, "EXECUTOR_MAX_SOURCE_BYTES"),
        ({"language": "python", "source": "x", "stdin": "y" * (256 * 1024 + 1)}, 413, "stdin"),
        # Nesting deeper than the JSON parser recurses (RecursionError): a 400, not a 500.
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (
            b'{"language": "python", "source": "x", "stdin": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            400,
            "nested too deeply",
        ),
        (
            b'{"language": "python", "source": "x", "stdin": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
            400,
            "nested too deeply",
        ),
        # A lone UTF-16 surrogate is valid JSON but no Unicode text: it cannot become UTF-8 (UnicodeEncodeError).
        (b'{"language": "python", "source": "print(1) # \\ud800"}', 422, "source is not valid Unicode"),
        (b'{"language": "sh", "source": "cat", "stdin": "\\udfff"}', 422, "stdin is not valid Unicode"),
    ],
)
def test_a_bad_request_gets_a_clear_4xx_and_runs_nothing(live_server, client, work_root, body, status, message):
    marker = work_root.parent / "ran"
    if isinstance(body, dict) and "source" in body and len(body["source"]) < 10:
        body = {**body, "source": f"open({str(marker)!r}, 'w').close()"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/v1/run", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert not marker.exists()
    assert live_server.runner.jobs_run == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"[" * 100_000, 400, "nested too deeply"),  # unterminated too: the decoder recurses first
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"source": ' + b"[" * 900 + b"]" * 900 + b"}", 422, "source"),  # deep but parseable
        (b'{"language": "python", "source": "\\ud83d"}', 200, ""),  # parses; encoding it is refused later
        (b'{"language": "python", "source": "\\ud83d\\ude00"}', 200, ""),  # a proper pair: U+1F600
        (b'"just a string"', 400, "JSON object"),
        (b"\xed\xa0\x80", 400, "not valid JSON"),  # a surrogate encoded as UTF-8 bytes is invalid UTF-8
    ],
)
def test_request_parsing_answers_4xx_for_every_malformed_body(body, status, message):
    from executor_service.http_app import parse_run_body
    from executor_service.jobs import RequestRejected

    if status == 200:
        assert parse_run_body(body).language == "python"
        return
    with pytest.raises(RequestRejected) as rejected:
        parse_run_body(body)
    assert rejected.value.status == status
    assert message in str(rejected.value)


@pytest.mark.parametrize(("field", "text"), [("source", "x\ud800"), ("stdin", "\udc00y")])
def test_job_from_request_refuses_lone_surrogates_with_a_422(field, text):
    from executor_service.jobs import RequestRejected, RunRequest, job_from_request
    from executor_service.settings import load_settings

    from .conftest import TOKEN_SHA256

    request = RunRequest(language="sh", **{"source": "cat", field: text})
    with pytest.raises(RequestRejected, match=f"{field} is not valid Unicode: a lone UTF-16 surrogate") as rejected:
        job_from_request(request, load_settings({"EXECUTOR_TOKEN_SHA256": TOKEN_SHA256}))
    assert rejected.value.status == 422


MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
    "Content-Type": "application/json",
}


def test_mcp_answers_a_deeply_nested_body_with_a_4xx(live_server, client):
    body = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "run_code", "arguments": '
        b'{"language": "sh", "source": "echo ran", "stdin": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}}"
    )
    response = client.post("/mcp", content=body, headers=MCP_HEADERS)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
    assert live_server.runner.jobs_run == 0


def test_mcp_refuses_a_lone_surrogate_with_a_4xx(live_server, client):
    body = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "run_code", "arguments": '
        b'{"language": "sh", "source": "echo \\ud800"}}}'
    )
    response = client.post("/mcp", content=body, headers=MCP_HEADERS)
    assert response.status_code == 400, response.text  # the SDK's strict JSON parser: a JSON-RPC parse error
    assert "hex escape" in response.json()["error"]["message"]
    assert live_server.runner.jobs_run == 0


def test_an_oversized_body_is_refused_before_it_is_read(client):
    response = client.post("/v1/run", content=b" " * (12 * 256 * 1024 + 64 * 1024 + 1))
    assert response.status_code == 413
    assert "request body" in response.json()["error"]


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/v2/run").status_code == 404
    response = client.get("/v1/run")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}


def test_a_failed_cleanup_takes_the_executor_out_of_service(live_server, client, anonymous, monkeypatch):
    from executor_service.sweeper import CleanupFailed

    def cannot_sweep(job_pid=None, spare=frozenset()):
        raise CleanupFailed("job processes still alive: [4242]")

    monkeypatch.setattr(live_server.runner.sweeper, "end_leftovers", cannot_sweep)
    first = client.post("/v1/run", json={"language": "sh", "source": "true"})
    assert first.status_code == 503
    assert "cleanup after a job failed" in first.json()["error"]
    monkeypatch.undo()
    assert client.post("/v1/run", json={"language": "sh", "source": "true"}).status_code == 503
    assert anonymous.get("/health").status_code == 503
