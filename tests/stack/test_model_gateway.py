"""The model path of the running stack, tried the way a prompt-injected agent in the workspace would.

The workspace reaches the model only through the model gateway, which holds the model API key and
adds it; the workspace holds no key at all. Everything here runs inside the stack's containers
(``docker exec``) or against the web UI on 127.0.0.1: nothing routes from the host to an internal
network. The key and the web password are read from the containers that hold them (the gateway's
environment, the workspace's), so the suite also verifies a stack it did not deploy.
"""

from __future__ import annotations

import base64
import json
import shlex
import urllib.request

import pytest

from components.model_gateway import API_KEY_ENV
from components.opencode_config import MODEL_API_KEY_PLACEHOLDER
from sandbox_model.destinations import MODEL_GATEWAY_PORT, MODEL_PORT
from tests.stack.runtime import connect, container_env, container_host, ip_addresses

pytestmark = [pytest.mark.docker, pytest.mark.pulumi]

CONNECT_TIMEOUT_S = 3.0

#: Run in a container: one HTTP request over a raw socket, exactly the bytes given (argv[3], Python
#: escapes allowed); prints the status line, then the whole answer's length and the body.
_RAW_REQUEST = (
    "import socket, sys, codecs\n"
    "host, port, data = sys.argv[1], int(sys.argv[2]), codecs.escape_decode(sys.argv[3].encode())[0]\n"
    "with socket.create_connection((host, port), timeout=30) as sock:\n"
    "    sock.sendall(data)\n"
    "    answer = b''\n"
    "    while chunk := sock.recv(65536):\n"
    "        answer += chunk\n"
    "head, _, body = answer.partition(b'\\r\\n\\r\\n')\n"
    "print(head.split(b'\\r\\n')[0].decode())\n"
    "print(head.decode(errors='replace'))\n"
    "print('BODY', body.decode(errors='replace'))\n"
)

#: Run in a container: a streamed chat completion; prints each event with the time it arrived.
_STREAM = (
    "import json, sys, time, urllib.request\n"
    "url, model, auth = sys.argv[1], sys.argv[2], sys.argv[3]\n"
    "body = json.dumps({'model': model, 'stream': True, 'messages': [{'role': 'user', 'content': 'hello'}]})\n"
    "headers = {'Content-Type': 'application/json'}\n"
    "if auth: headers['Authorization'] = auth\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "with opener.open(urllib.request.Request(url, body.encode(), headers), timeout=30) as response:\n"
    "    print(json.dumps({'status': response.status, 'type': response.headers['Content-Type']}))\n"
    "    for line in response:\n"
    "        if line.strip(): print(json.dumps({'event': line.decode().strip()}))\n"
)


@pytest.fixture(scope="module")
def gateway(deployed_stack) -> str:
    return deployed_stack.one("model-gateway")


@pytest.fixture(scope="module")
def model_key(docker_api, gateway) -> str:
    key = container_env(docker_api, gateway).get(API_KEY_ENV)
    if not key:
        pytest.skip("this stack's model endpoint wants no key")
    return key


def in_stack_model(deployed_stack) -> str:
    if not deployed_stack.containers.get("model"):
        pytest.skip(f"stack {deployed_stack.stack!r} has an external model")
    return deployed_stack.one("model")


def raw_request(name: str, host: str, port: int, data: str) -> tuple[str, str, str]:
    """(status line, head, body) of raw bytes sent from inside container ``name``."""
    result = container_host(name).run(
        f"python3 -I -c {shlex.quote(_RAW_REQUEST)} {shlex.quote(host)} {port} {shlex.quote(data)}"
    )
    assert result.rc == 0, result.stderr
    status, rest = result.stdout.split("\n", 1)
    head, _, body = rest.partition("BODY ")
    return status, head, body


def served_model(deployed_stack, gateway) -> str:
    """The model's name, as the gateway's upstream lists it."""
    in_stack_model(deployed_stack)
    status, _, body = raw_request(
        deployed_stack.one("workspace"), gateway, MODEL_GATEWAY_PORT, "GET /v1/models HTTP/1.1\\r\\nHost: g\\r\\n\\r\\n"
    )
    assert status.split()[1] == "200", (status, body)
    return json.loads(body)["data"][0]["id"]


# --- the workspace cannot reach the model server itself --------------------------------------


def test_the_model_server_is_out_of_the_workspaces_reach(deployed_stack, docker_api):
    model = in_stack_model(deployed_stack)
    workspace = deployed_stack.one("workspace")
    targets = [(model, MODEL_PORT), *((address, MODEL_PORT) for address in ip_addresses(docker_api, model).values())]
    attempts = connect(container_host(workspace), targets, CONNECT_TIMEOUT_S)
    open_paths = {f"{t}:{p}": a.detail for (t, p), a in attempts.items() if not a.blocked}
    assert not open_paths, f"the workspace reaches the model server directly: {open_paths}"
    # Not even by name: the workspace shares no network with it.
    assert "gaierror" in attempts[(model, MODEL_PORT)].detail, attempts[(model, MODEL_PORT)].detail
    workspace_networks = set(ip_addresses(docker_api, workspace))
    assert not workspace_networks & set(ip_addresses(docker_api, model)), (
        "the workspace shares a network with the model"
    )


def test_only_the_gateway_and_the_model_api_ingress_share_the_upstream_network(deployed_stack, docker_api, gateway):
    model = in_stack_model(deployed_stack)
    upstream = deployed_stack.networks["model-upstream"]
    members = set(docker_api.api.inspect_network(upstream)["Containers"] or {})
    names = {docker_api.api.inspect_container(member)["Name"].lstrip("/") for member in members}
    expected = {
        model,
        gateway,
        *(n for n in deployed_stack.containers.get("ingress-gateway", ()) if n.endswith("-model-api")),
    }
    assert names == expected


# --- the gateway: any key or none from the workspace, the stack's key upstream -----------------


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer wrong", f"Bearer {MODEL_API_KEY_PLACEHOLDER}", "Basic b3BlbmNvZGU6eA=="],
    ids=["none", "wrong", "placeholder", "basic"],
)
def test_the_gateway_answers_whatever_authorization_the_workspace_sends(deployed_stack, gateway, authorization):
    in_stack_model(deployed_stack)
    auth = f"Authorization: {authorization}\\r\\n" if authorization else ""
    status, _, body = raw_request(
        deployed_stack.one("workspace"),
        gateway,
        MODEL_GATEWAY_PORT,
        f"GET /v1/models HTTP/1.1\\r\\nHost: {gateway}\\r\\n{auth}\\r\\n",
    )
    assert status.split()[1] == "200", (status, body)
    assert json.loads(body)["object"] == "list"


def test_the_model_server_refuses_requests_without_the_key(deployed_stack, gateway):
    """The control: the model server checks the key, so the gateway's 200s are the key's doing."""
    model = in_stack_model(deployed_stack)
    status, _, body = raw_request(
        gateway,
        model,
        MODEL_PORT,
        f"GET /v1/models HTTP/1.1\\r\\nHost: {model}\\r\\n"
        f"Authorization: Bearer {MODEL_API_KEY_PLACEHOLDER}\\r\\n\\r\\n",
    )
    assert status.split()[1] == "401", (status, body)


def test_a_streamed_completion_arrives_event_by_event(deployed_stack, gateway):
    model_name = served_model(deployed_stack, gateway)
    url = f"http://{gateway}:{MODEL_GATEWAY_PORT}/v1/chat/completions"
    result = container_host(deployed_stack.one("workspace")).run(
        f"python3 -I -c {shlex.quote(_STREAM)} {shlex.quote(url)} {shlex.quote(model_name)} 'Bearer wrong'"
    )
    assert result.rc == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"status": 200, "type": "text/event-stream"}, lines
    events = [line["event"] for line in lines[1:]]
    assert len(events) > 3 and events[-1] == "data: [DONE]", events
    assert all(event.startswith("data: ") for event in events)


@pytest.mark.parametrize(
    "request_text, expected",
    [
        ("GET http://{model}:8000/v1/models HTTP/1.1\\r\\nHost: {model}:8000\\r\\n\\r\\n", "400"),
        ("CONNECT {model}:8000 HTTP/1.1\\r\\nHost: {model}:8000\\r\\n\\r\\n", "405"),
        ("GET /v1/models\\r\\nAuthorization: Bearer x HTTP/1.1\\r\\nHost: g\\r\\n\\r\\n", "400"),
        ("GET /v1/../health HTTP/1.1\\r\\nHost: g\\r\\n\\r\\n", "400"),
        ("GET /metrics HTTP/1.1\\r\\nHost: g\\r\\n\\r\\n", "404"),
    ],
    ids=["absolute-uri", "connect", "crlf-in-path", "dot-segments", "outside-v1"],
)
def test_hostile_requests_from_the_workspace_are_refused(deployed_stack, gateway, request_text, expected):
    model = in_stack_model(deployed_stack)
    status, _, body = raw_request(
        deployed_stack.one("workspace"), gateway, MODEL_GATEWAY_PORT, request_text.format(model=model)
    )
    assert status.split()[1] == expected, (status, body)
    assert "model gateway:" in body


# --- the workspace holds no model key: environment, processes, GET /config ---------------------


def test_the_workspace_environment_holds_no_model_key(deployed_stack, docker_api, model_key):
    workspace = deployed_stack.one("workspace")
    env = container_env(docker_api, workspace)
    assert not [name for name, value in env.items() if model_key in value], "the workspace's environment has the key"
    assert "MODEL_API_KEY" not in env
    config = json.loads(env["OPENCODE_CONFIG_CONTENT"])
    assert config["provider"]["sandbox"]["options"]["apiKey"] == MODEL_API_KEY_PLACEHOLDER


def test_no_process_of_the_workspace_has_the_model_key(deployed_stack, model_key):
    """PID 1 (docker-init), the OpenCode server and every other process: what the agent's UID could read."""
    host = container_host(deployed_stack.one("workspace"))
    dumps = host.run("for e in /proc/[0-9]*/environ; do echo \"== $e\"; tr '\\0' '\\n' < \"$e\" 2>/dev/null; done")
    assert dumps.rc == 0 and "== /proc/1/environ" in dumps.stdout, dumps.stderr
    assert "OPENCODE_SERVER_PASSWORD=" in dumps.stdout, "the probe did not read the server's environment"
    assert model_key not in dumps.stdout, "a workspace process has the model key in its environment"


def _web(url: str, password: str) -> dict:
    request = urllib.request.Request(
        url, headers={"Authorization": "Basic " + base64.b64encode(f"opencode:{password}".encode()).decode()}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())


def test_opencodes_config_api_hands_out_no_model_key(deployed_stack, docker_api, model_key):
    """``GET /config`` returns the resolved provider options, apiKey included, to any logged-in client."""
    password = container_env(docker_api, deployed_stack.one("workspace"))["OPENCODE_SERVER_PASSWORD"]
    config = _web(f"{deployed_stack.web_url}/config", password)
    options = config["provider"]["sandbox"]["options"]
    assert options["apiKey"] == MODEL_API_KEY_PLACEHOLDER, options
    assert options["baseURL"].startswith(f"http://{deployed_stack.one('model-gateway')}:")
    assert model_key not in json.dumps(config)
    providers = _web(f"{deployed_stack.web_url}/config/providers", password)
    assert model_key not in json.dumps(providers)


def test_the_gateway_logs_no_key(docker_api, gateway, model_key):
    logs = docker_api.containers.get(gateway).logs(stdout=True, stderr=True).decode(errors="replace")
    assert logs and model_key not in logs
