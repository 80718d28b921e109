"""A local emulator of Google's OAuth 2.0 token endpoint, for the refresh-token grant.

google-auth's user credentials (`google.oauth2.credentials.Credentials`) POST a form with
`grant_type=refresh_token`, `client_id`, `client_secret` and `refresh_token` to their
token URI and read `{"access_token", "expires_in", "scope", "token_type"}`. As Google
does, a refresh token that expired or was revoked gets 400 `invalid_grant` ("Token has
been expired or revoked."), and an unknown client or wrong secret 401 `invalid_client`.
The access token a grant hands out is fixed, so the API emulators can be told which
bearer token to accept. Never logs a secret: the request log keeps the client id only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from aiohttp import web

from sandbox.background import ServedEmulator

ACCESS_TOKEN_LIFETIME = 3599  # seconds, as Google answers


@dataclass(frozen=True)
class Grant:
    """One user's consent to one OAuth client: what google-auth refreshes with."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    scope: str = "https://www.googleapis.com/auth/calendar"


class GoogleOAuthEmulator(ServedEmulator):
    """Google's token endpoint on 127.0.0.1: `token_url` is google-auth's `token_uri`."""

    def __init__(self, *grants: Grant) -> None:
        self._lock = threading.Lock()
        self._grants = list(grants)
        self._revoked: set[str] = set()
        self.refreshed: list[str] = []  # the client id of each successful refresh
        super().__init__(self._app())

    @property
    def token_url(self) -> str:
        return self._server.url + "/token"

    def add(self, grant: Grant) -> None:
        """Another consent, e.g. another tenant's account."""
        with self._lock:
            self._grants.append(grant)

    def revoke(self, refresh_token: str) -> None:
        """The user removed the app's access (or the token expired): refreshing now fails."""
        with self._lock:
            self._revoked.add(refresh_token)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return _error(400, "unsupported_grant_type", "Invalid grant_type: ")
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        refresh_token = str(form.get("refresh_token", ""))
        with self._lock:
            clients = [g for g in self._grants if g.client_id == client_id]
            if not clients or all(g.client_secret != secret for g in clients):
                return _error(401, "invalid_client", "The OAuth client was not found.")
            grant = next((g for g in clients if g.refresh_token == refresh_token), None)
            if grant is None or refresh_token in self._revoked:
                return _error(400, "invalid_grant", "Token has been expired or revoked.")
            self.refreshed.append(client_id)
        return web.json_response(
            {
                "access_token": grant.access_token,
                "expires_in": ACCESS_TOKEN_LIFETIME,
                "scope": grant.scope,
                "token_type": "Bearer",
            }
        )


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
