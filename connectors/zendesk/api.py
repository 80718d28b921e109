"""The Zendesk Support API calls the tools make, each a plain function of a RestClient."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from connectors.credentials import Credential
from connectors.rest import ConnectorError, RestClient, paginate
from connectors.sessions import Service

PAGE_SIZE = 100  # Zendesk's largest page for search and comments
API_TOKEN_MARKER = "/token:"  # noqa: S105  # not a secret: the separator of Zendesk API-token logins
TICKET_FIELDS = (
    "id",
    "subject",
    "status",
    "priority",
    "requester_id",
    "tags",
    "created_at",
    "updated_at",
)
COMMENT_FIELDS = ("id", "author_id", "body", "public", "created_at")


def zendesk_service(base_url: str) -> Service:
    """Zendesk, with `{subdomain}` in the base URL filled in from each tenant's credential."""

    def url(credential: Credential) -> str:
        if "{subdomain}" not in base_url:
            return base_url  # a fixed URL: the local emulator
        if not credential.account:
            raise ConnectorError(
                "Zendesk is connected without a subdomain: an admin can run "
                "`/agent connect zendesk` to set it up again"
            )
        return base_url.replace("{subdomain}", credential.account)

    def headers(credential: Credential) -> Mapping[str, str]:
        if API_TOKEN_MARKER in credential.token:
            login = base64.b64encode(credential.token.encode()).decode()
            return {"Authorization": f"Basic {login}"}
        return {"Authorization": f"Bearer {credential.token}"}

    return Service("zendesk", "Zendesk", url, headers)


def search_tickets(api: RestClient, query: str, limit: int) -> list[dict[str, Any]]:
    """Tickets matching Zendesk search syntax (`status:open refund`), newest pages first."""

    def page(next_url: str | None) -> tuple[list[dict[str, Any]], str | None]:
        if next_url is None:
            found = api.get(
                "/api/v2/search.json",
                params={"query": f"type:ticket {query}", "per_page": min(limit, PAGE_SIZE)},
            )
        else:
            found = api.get(next_url)  # Zendesk's own link, with the query in it
        return found.get("results") or [], found.get("next_page")

    return [_pick(t, TICKET_FIELDS) for t in paginate(page, limit=limit)]


def read_ticket(api: RestClient, ticket_id: int, comment_limit: int) -> dict[str, Any]:
    ticket = api.get(f"/api/v2/tickets/{ticket_id}.json").get("ticket") or {}

    def page(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"page[size]": min(comment_limit, PAGE_SIZE)}
        if cursor is not None:
            params["page[after]"] = cursor
        found = api.get(f"/api/v2/tickets/{ticket_id}/comments.json", params=params)
        meta = found.get("meta") or {}
        return found.get("comments") or [], meta.get("after_cursor") if meta.get(
            "has_more"
        ) else None

    comments = paginate(page, limit=comment_limit)
    return {
        **_pick(ticket, (*TICKET_FIELDS, "description")),
        "comments": [_pick(c, COMMENT_FIELDS) for c in comments],
    }


def add_comment(
    api: RestClient, ticket_id: int, body: str, public: bool, key: str
) -> dict[str, Any]:
    # Not retried on a 5xx or a lost connection: should Zendesk ignore the key on an
    # update, a second comment would appear. The action's retry reconciles instead.
    changes = {"comment": {"body": body, "public": public}}
    return _update(api, ticket_id, changes, key, retry_safe=False)


def set_status(api: RestClient, ticket_id: int, status: str, key: str) -> dict[str, Any]:
    # Setting a status twice leaves the ticket as setting it once.
    return _update(api, ticket_id, {"status": status}, key, retry_safe=True)


def find_comment(api: RestClient, ticket_id: int, body: str) -> dict[str, Any] | None:
    """A comment with exactly this text already on the ticket (an earlier attempt's)."""
    ticket = read_ticket(api, ticket_id, comment_limit=10_000)
    for comment in reversed(ticket["comments"]):
        if str(comment.get("body") or "").strip() == body.strip():
            return {"ticket_id": ticket_id, "comment_id": comment["id"]}
    return None


def ticket_status(api: RestClient, ticket_id: int) -> str | None:
    ticket = api.get(f"/api/v2/tickets/{ticket_id}.json").get("ticket") or {}
    status = ticket.get("status")
    return str(status) if status is not None else None


def ticket_summary(api: RestClient, ticket_id: int) -> dict[str, Any]:
    """The ticket's subject and status, without its comments (what a card shows)."""
    ticket = api.get(f"/api/v2/tickets/{ticket_id}.json").get("ticket") or {}
    return _pick(ticket, ("id", "subject", "status"))


def _update(
    api: RestClient, ticket_id: int, changes: dict[str, Any], key: str, *, retry_safe: bool
) -> dict[str, Any]:
    answer = api.request(
        "PUT",
        f"/api/v2/tickets/{ticket_id}.json",
        json={"ticket": changes},
        # Zendesk answers a repeat with the same key with the first answer instead of
        # acting again (x-idempotency-lookup: hit).
        headers={"Idempotency-Key": key},
        idempotent=retry_safe,
    )
    ticket = answer.get("ticket") or {}
    comment_ids = [
        e["id"]
        for e in (answer.get("audit") or {}).get("events") or []
        if e.get("type") == "Comment"
    ]
    result: dict[str, Any] = {
        "ticket_id": ticket.get("id", ticket_id),
        "status": ticket.get("status"),
    }
    if comment_ids:
        result["comment_id"] = comment_ids[0]
    return result


def _pick(item: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: item.get(name) for name in fields if name in item}
