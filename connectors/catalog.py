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

CONNECTORS = {setup.name: setup for setup in (HUBSPOT, ZENDESK)}


def connect_usage() -> str:
    names = ", ".join(f"`{name}`" for name in CONNECTORS)
    return f"Usage: `/agent connect NAME` shows how to connect one of: {names}."
