"""The conductor: an MCP endpoint through which an outside agent delegates work to the sandboxed agent."""
