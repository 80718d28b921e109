"""Tools offered by MCP servers (MCP_SERVERS), loaded by each worker at start.

In the order a tool flows: `config` (how a server is declared), `connection` (one live
session, held open by a task), `bridge` (the worker's threads calling into the asyncio
client, with timeouts and one reconnect), `arguments` (the server's inputSchema as our
arguments model), `results` (a call's result as ours), `tools` (an MCP tool as our Tool),
`toolset` (all of it for one process). `errors` and `failures` say what went wrong.
"""
