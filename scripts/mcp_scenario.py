"""An agent's session with crier's MCP server, driven by the official Python SDK (PyPI `mcp`).

    python mcp_scenario.py stdio --bin target/debug/crier --url http://127.0.0.1:PORT --key sk_…
    python mcp_scenario.py http --url http://127.0.0.1:PORT --key sk_…

Over stdio it starts `crier mcp` with CRIER_URL and CRIER_API_KEY in its environment; over
HTTP it talks to URL/mcp with the key in the Authorization header (never in the URL). With
`--setup-key` (a key that may connect accounts) it first connects a sandbox account over the
plain API. Then, as the agent: list the tools, draft a post to the first account, validate it,
try to publish it, read a post that does not exist (an API error), list and read resources.
Prints one JSON object with what came back; crates/crier/tests/mcp.rs asserts on it.
"""

import argparse
import asyncio
import json
import sys
import urllib.request

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def connect_sandbox(url, key, handle):
    req = urllib.request.Request(
        f"{url}/v1/connect/sandbox",
        data=json.dumps({"handle": handle}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["id"]


async def session(client):
    out = {}
    tools = dump(await client.list_tools())["tools"]
    out["tools"] = [t["name"] for t in tools]
    out["schemas_are_objects"] = all(t["inputSchema"].get("type") == "object" for t in tools)

    me = dump(await client.call_tool("whoami", {}))
    out["whoami"] = me.get("structuredContent")

    accounts = dump(await client.call_tool("list_accounts", {}))
    account_ids = [a["id"] for a in accounts["structuredContent"]["data"]]
    out["accounts"] = account_ids

    draft = dump(
        await client.call_tool(
            "draft_post",
            {"body": "Drafted by an agent through MCP", "account_ids": account_ids[:1]},
        )
    )
    out["draft"] = {"is_error": draft.get("isError", False), "post": draft.get("structuredContent")}
    post_id = (draft.get("structuredContent") or {}).get("id")

    validate = dump(await client.call_tool("validate_post", {"post_id": post_id}))
    out["validate"] = {
        "is_error": validate.get("isError", False),
        "result": validate.get("structuredContent"),
    }

    publish = dump(await client.call_tool("publish_post", {"id": post_id}))
    out["publish"] = {
        "listed": "publish_post" in out["tools"],
        "is_error": publish.get("isError", False),
        "content": publish.get("structuredContent"),
        "text": publish["content"][0]["text"] if publish.get("content") else None,
    }

    missing = dump(await client.call_tool("get_post", {"id": "post_doesnotexist"}))
    text = missing["content"][0]["text"]
    out["api_error"] = {"is_error": missing.get("isError", False), "envelope": json.loads(text)}

    resources = dump(await client.list_resources())["resources"]
    out["resources"] = [r["uri"] for r in resources]
    if "crier://accounts" in out["resources"]:
        read = dump(await client.read_resource("crier://accounts"))
        out["accounts_resource"] = json.loads(read["contents"][0]["text"])
    return out


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("transport", choices=["stdio", "http"])
    p.add_argument("--url", required=True, help="the crier server, http://127.0.0.1:PORT")
    p.add_argument("--key", required=True, help="the agent's API key")
    p.add_argument("--bin", help="the crier binary (stdio)")
    p.add_argument("--setup-key", help="a key with accounts:write, to connect a sandbox account first")
    p.add_argument("--handle", default="mcp-agent")
    args = p.parse_args()

    if args.setup_key:
        connect_sandbox(args.url, args.setup_key, args.handle)

    if args.transport == "stdio":
        if not args.bin:
            p.error("stdio needs --bin")
        server = StdioServerParameters(
            command=args.bin,
            args=["mcp"],
            env={"CRIER_URL": args.url, "CRIER_API_KEY": args.key, "PATH": "/usr/bin:/bin"},
        )
        async with Client(server) as client:
            out = await session(client)
    else:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {args.key}"})
        async with http:
            transport = streamable_http_client(f"{args.url}/mcp", http_client=http)
            async with Client(transport) as client:
                out = await session(client)
    out["transport"] = args.transport
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main())
