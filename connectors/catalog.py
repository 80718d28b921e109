"""The connectors an admin can connect with `/agent connect NAME`: how to get a token, and
how the command's words become a credential."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from connectors.credentials import Credential

TOKEN = re.compile(r"^\S{8,512}$")
SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class ConnectorSetup:
    name: str
    title: str
    instructions: str  # shown by `/agent connect NAME`
    usage: str
    # The credential in the command's words after the name; None if they do not fit.
    credential: Callable[[list[str]], Credential | None]


def _hubspot_credential(words: list[str]) -> Credential | None:
    if len(words) != 1 or not TOKEN.match(words[0]):
        return None
    return Credential(token=words[0])


def _zendesk_credential(words: list[str]) -> Credential | None:
    if len(words) != 2 or not TOKEN.match(words[1]):
        return None
    subdomain = words[0].lower().removesuffix(".zendesk.com")
    if not SUBDOMAIN.match(subdomain):
        return None
    return Credential(token=words[1], account=subdomain)


HUBSPOT = ConnectorSetup(
    name="hubspot",
    title="HubSpot",
    instructions=(
        "*Connecting HubSpot*\n"
        "1. In HubSpot, open Settings → Integrations → Private Apps → Create a private app.\n"
        "2. Under Scopes, tick `crm.objects.contacts.read`, `crm.objects.contacts.write`, "
        "`crm.objects.companies.read`, `crm.objects.deals.read` and "
        "`crm.objects.deals.write`, then create the app and copy its access token.\n"
        "3. Run `/agent connect hubspot TOKEN` here. The token is stored encrypted and never "
        "shown again; reads run straight away, notes and deal changes wait for approval."
    ),
    usage="Usage: `/agent connect hubspot TOKEN` (a private app's access token)",
    credential=_hubspot_credential,
)

ZENDESK = ConnectorSetup(
    name="zendesk",
    title="Zendesk",
    instructions=(
        "*Connecting Zendesk*\n"
        "1. In Admin Center, open Apps and integrations → APIs → Zendesk API, turn on token "
        "access and add an API token (or create an OAuth access token).\n"
        "2. Run `/agent connect zendesk SUBDOMAIN you@company.com/token:API_TOKEN` (or "
        "`/agent connect zendesk SUBDOMAIN OAUTH_TOKEN`), where SUBDOMAIN is the `acme` of "
        "acme.zendesk.com. Comments and status changes are made as that user.\n"
        "The token is stored encrypted and never shown again; reads run straight away, "
        "comments and status changes wait for approval."
    ),
    usage=(
        "Usage: `/agent connect zendesk SUBDOMAIN you@company.com/token:API_TOKEN` "
        "or `/agent connect zendesk SUBDOMAIN OAUTH_TOKEN`"
    ),
    credential=_zendesk_credential,
)


def _google_credential(words: list[str]) -> Credential | None:
    if len(words) != 3 or not all(TOKEN.match(word) for word in words):
        return None
    client_id, client_secret, refresh_token = words
    if not client_id.endswith(".apps.googleusercontent.com"):
        return None
    # Imported here: Google's client libraries take a second to import, and the catalog
    # is loaded by `chatops serve` for `/agent connect`, which rarely names Google.
    from connectors.google.client import google_credential

    return google_credential(client_id, client_secret, refresh_token)


def _google_instructions(title: str, name: str, scopes: str, effects: str) -> str:
    return (
        f"*Connecting {title}*\n"
        "1. In Google Cloud console, APIs & Services: enable the "
        f"{title} API, then under Credentials create an OAuth client ID of type "
        "*Web application* with `https://developers.google.com/oauthplayground` as an "
        "authorized redirect URI. Note its client ID and client secret. Set the OAuth "
        "consent screen to *In production* (or *Internal*): in *Testing*, Google expires "
        "refresh tokens after 7 days.\n"
        "2. In the OAuth 2.0 Playground (developers.google.com/oauthplayground), open the "
        "settings (⚙), tick *Use your own OAuth credentials* and enter them; authorize "
        f"{scopes} signed in as the account the assistant should use, then *Exchange "
        "authorization code for tokens* and copy the refresh token.\n"
        f"3. Run `/agent connect {name} CLIENT_ID CLIENT_SECRET REFRESH_TOKEN` here. They "
        f"are stored encrypted and never shown again; {effects}\n"
        "If the account's password changes or its access is removed, run the command "
        "again with a new refresh token."
    )


GOOGLE_CALENDAR = ConnectorSetup(
    name="google_calendar",
    title="Google Calendar",
    instructions=_google_instructions(
        "Google Calendar",
        "google_calendar",
        "`https://www.googleapis.com/auth/calendar.events` and "
        "`https://www.googleapis.com/auth/calendar.freebusy`",
        "free/busy and event reads run straight away, invitations wait for approval.",
    ),
    usage=(
        "Usage: `/agent connect google_calendar CLIENT_ID CLIENT_SECRET REFRESH_TOKEN` "
        "(an OAuth client ID ending in .apps.googleusercontent.com)"
    ),
    credential=_google_credential,
)

GMAIL = ConnectorSetup(
    name="gmail",
    title="Gmail",
    instructions=_google_instructions(
        "Gmail",
        "gmail",
        "`https://www.googleapis.com/auth/gmail.readonly`",
        "the assistant can then search and read that mailbox's threads (it never sends from it).",
    ),
    usage=(
        "Usage: `/agent connect gmail CLIENT_ID CLIENT_SECRET REFRESH_TOKEN` "
        "(an OAuth client ID ending in .apps.googleusercontent.com)"
    ),
    credential=_google_credential,
)

CONNECTORS = {setup.name: setup for setup in (HUBSPOT, ZENDESK, GOOGLE_CALENDAR, GMAIL)}


def connect_usage() -> str:
    names = ", ".join(f"`{name}`" for name in CONNECTORS)
    return f"Usage: `/agent connect NAME` shows how to connect one of: {names}."
