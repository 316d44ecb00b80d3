"""An AI assistant signs in to crier's MCP server with OAuth, driven by the official Python
SDK's `OAuthClientProvider` (PyPI `mcp`), from nothing: no key anywhere.

    python mcp_oauth_scenario.py --url http://127.0.0.1:PORT --email E --password P

The SDK calls `POST /mcp`, gets `401` with `WWW-Authenticate: Bearer resource_metadata=…`,
discovers the protected resource and the authorization server, registers itself (RFC 7591),
and sends "the browser" to the authorization URL. The browser step is a person done over
HTTP: they sign in to the dashboard, see the consent page, keep the preselected permissions
(the "AI agent (drafts only)" preset) and allow; the redirect's code, state and iss go back to
the SDK, which exchanges the code with its PKCE verifier. Then, as the assistant: list the
tools and draft a post. Then a refresh (the SDK's token made to look expired), after which the
old access token is refused. Then the person revokes the app in Settings, after which the
access token is refused. Prints one JSON object; crates/crier/tests/mcp.rs asserts on it.
"""

import argparse
import asyncio
import html
import json
import re
import sys
import time
from urllib.parse import parse_qs, urlencode, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

REDIRECT = "http://127.0.0.1:33418/callback"


class Memory:
    """The SDK's token storage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


def inputs(page, form_action):
    """The fields of the form posting to `form_action`: hidden inputs, the selected option of
    each select, and the checked checkboxes."""
    start = page.index(f'action="{form_action}"')
    form = page[start : page.index("</form>", start)]
    fields = []
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name:
            continue
        kind = re.search(r'type="([^"]*)"', tag)
        kind = kind.group(1) if kind else "text"
        if kind == "checkbox" and " checked" not in tag:
            continue
        fields.append((html.unescape(name.group(1)), html.unescape(value.group(1) if value else "")))
    for name, body in re.findall(r'<select[^>]*name="([^"]*)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body) or re.search(
            r'<option value="([^"]*)"', body
        )
        fields.append((name, html.unescape(chosen.group(1))))
    return fields


class Person:
    """Someone with a dashboard account, in a browser (here: HTTP with a cookie jar)."""

    def __init__(self, url, email, password):
        self.url = url
        self.email = email
        self.password = password
        self.http = httpx2.AsyncClient(base_url=url, follow_redirects=False, timeout=30)
        self.authorization_url = None
        self.consent = None

    async def sign_in(self):
        r = await self.http.post("/login", data={"email": self.email, "password": self.password})
        assert r.status_code == 303, (r.status_code, r.text)

    async def open(self, authorization_url):
        """The SDK's redirect handler: where it sends the browser."""
        self.authorization_url = authorization_url

    async def approve(self):
        """The SDK's callback handler: the person signs in, reads the consent page and allows."""
        await self.sign_in()
        r = await self.http.get(self.authorization_url)
        assert r.status_code == 200, (r.status_code, r.text)
        page = r.text
        self.consent = {
            "client_name": re.search(r'<span class="client">([^<]*)</span>', page).group(1),
            "offered": re.findall(r'name="grant_scope" value="([^"]*)"', page),
        }
        fields = inputs(page, "/oauth/authorize")
        fields.append(("decision", "approve"))
        self.consent["granted"] = [v for k, v in fields if k == "grant_scope"]
        r = await self.http.post(
            "/oauth/authorize",
            content=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 303, (r.status_code, r.text)
        location = r.headers["location"]
        assert location.startswith(REDIRECT), location
        q = parse_qs(urlparse(location).query)
        return AuthorizationCodeResult(
            code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0]
        )

    async def revoke_app(self):
        """Settings → API keys → Connected apps → Revoke."""
        r = await self.http.get("/app/keys")
        assert r.status_code == 200, (r.status_code, r.text)
        app_id = re.search(r'data-app-id="([^"]*)"', r.text).group(1)
        csrf = re.search(r'name="_csrf" value="([^"]*)"', r.text).group(1)
        r = await self.http.post(f"/app/apps/{app_id}/revoke", data={"_csrf": csrf})
        assert r.status_code == 200, (r.status_code, r.text)
        return app_id


async def status_with(url, token):
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {token}"})
        return r.status_code


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    args = p.parse_args()

    out = {}
    person = Person(args.url, args.email, args.password)
    storage = Memory()
    provider = OAuthClientProvider(
        server_url=f"{args.url}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="Scenario assistant",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=person.open,
        callback_handler=person.approve,
    )
    async with create_mcp_http_client(auth=provider) as http:
        transport = streamable_http_client(f"{args.url}/mcp", http_client=http)
        async with Client(transport) as client:
            tools = (await client.list_tools()).tools
            out["tools"] = [t.name for t in tools]
            out["consent"] = person.consent
            out["client"] = {
                "client_id": storage.client.client_id,
                "auth_method": storage.client.token_endpoint_auth_method,
            }
            out["token"] = {
                "scope": storage.tokens.scope,
                "expires_in": storage.tokens.expires_in,
                "has_refresh": storage.tokens.refresh_token is not None,
            }
            accounts = await client.call_tool("list_accounts", {})
            out["accounts_is_error"] = bool(accounts.is_error)

            first_access = storage.tokens.access_token
            first_refresh = storage.tokens.refresh_token
            # The token looks expired to the SDK: its next request refreshes first.
            provider.context.token_expiry_time = time.time() - 10
            tools = (await client.list_tools()).tools
            out["after_refresh_tools"] = len(tools)
            out["refresh"] = {
                "new_access": storage.tokens.access_token != first_access,
                "new_refresh": storage.tokens.refresh_token != first_refresh,
                "old_access_status": await status_with(args.url, first_access),
                "new_access_status": await status_with(args.url, storage.tokens.access_token),
            }
    out["revoked_app"] = await person.revoke_app()
    out["after_revoke_status"] = await status_with(args.url, storage.tokens.access_token)
    await person.http.aclose()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main())
