"""A remote MCP server the live tests own: Python's standard library only, streamable HTTP (JSON answers).

Run in a container (``python3 -c SOURCE``) on a stack's ``outside`` network, where only the egress
gateway can reach it. It serves ``POST /mcp`` on every port in ``MCP_DOUBLE_PORTS`` and requires
``Authorization: Bearer $MCP_DOUBLE_TOKEN``; its one tool, ``whoami``, answers with
``MCP_DOUBLE_MARKER``, the port it was called on and the arguments it got.
"""

from __future__ import annotations

SOURCE = r"""
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = os.environ["MCP_DOUBLE_TOKEN"]
MARKER = os.environ["MCP_DOUBLE_MARKER"]
TOOL = {"name": "whoami", "description": "Say which MCP server answered.",
        "inputSchema": {"type": "object", "properties": {"note": {"type": "string"}}}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # no server-initiated stream
        self.reply(405)

    def do_DELETE(self):
        self.reply(200, {})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.reply(401, {"error": "missing or wrong bearer token"})
        message = json.loads(body)
        method, ident = message.get("method"), message.get("id")
        if ident is None:  # a notification
            return self.reply(202)
        port = self.server.server_address[1]
        if method == "initialize":
            result = {"protocolVersion": message["params"].get("protocolVersion", "2025-03-26"),
                      "capabilities": {"tools": {}}, "serverInfo": {"name": "mcp-double", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [TOOL]}
        elif method == "tools/call":
            text = json.dumps({"marker": MARKER, "port": port, "arguments": message["params"].get("arguments")})
            result = {"content": [{"type": "text", "text": text}], "isError": False}
        elif method == "ping":
            result = {}
        else:
            return self.reply(200, {"jsonrpc": "2.0", "id": ident,
                                    "error": {"code": -32601, "message": "no method " + str(method)}})
        self.reply(200, {"jsonrpc": "2.0", "id": ident, "result": result})


servers = [ThreadingHTTPServer(("0.0.0.0", int(port)), Handler) for port in os.environ["MCP_DOUBLE_PORTS"].split(",")]
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
"""
