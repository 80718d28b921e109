"""Who may decide: approvers for actions, admins for the changing /agent commands, and
only people of the tenant's own organisation for either.

Slack says who someone is (`users.info`: their team, and whether they are a workspace
admin). Each answer is kept in `slack_user_checks`, so a busy approval channel or an
admin typing commands does not ask Slack every time, and a Slack that is rate-limiting
or down does not turn a check into an error:

- A user's organisation never changes (a Slack user id belongs to one team for good),
  so the stored team is used whatever its age.
- Admin status can change, so it is reused for `ADMIN_TTL` only, then asked again.
- If Slack cannot answer then, the command is refused with a message saying so, except
  `/agent pause`, the one command that must work when things are on fire: it accepts an
  admin verdict up to `EMERGENCY_STALE` old. Pausing stops work; it never grants more.
- The app's own admins (`tenant_admins`, `/agent admins add @person`) need no Slack at
  all: the configured list for emergencies.

Nobody is ever allowed on a guess: no stored verdict and no answer from Slack is a
refusal (in the listener) or a retry (in a worker, where Slack's 429 is waited out).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg import AsyncConnection, Connection
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from core.db import AsyncPool
from review import people
from review.tenant_settings import ReviewSettings

log = structlog.get_logger(__name__)

ADMIN_TTL = 300.0  # seconds an admin verdict from Slack is reused before asking again
EMERGENCY_STALE = 7 * 24 * 3600.0  # seconds: the oldest admin verdict `/agent pause` trusts
SLACK_TIMEOUT = 1.5  # seconds users.info may take inside the listener's 3-second ack
# A stored mention of a person or a user group (escalation targets).
MENTIONED = re.compile(r"<@(?P<user>[UW][A-Z0-9]+)>|<!subteam\^(?P<group>S[A-Z0-9]+)>")

OUTSIDER = (
    "you are not a member of this workspace's organisation (in a shared channel, only "
    "its own people decide)"
)
NOT_APPROVER = (
    "you are not one of this workspace's approvers (an admin can add you with "
    "`/agent approvers add @you`)"
)
SLACK_UNAVAILABLE = (
    "Slack didn't answer when I checked who you are (it may be rate-limiting me), so I "
    "can't let that through right now. Please try again in a minute. Admins can still "
    "`/agent pause`."
)

ORGANISATION_SQL = """
SELECT team_id, enterprise_id, is_enterprise_install FROM slack_installations
 WHERE tenant_id = %s ORDER BY id LIMIT 1
"""
KNOWN_SQL = """
SELECT team_id, enterprise_id, is_admin,
       extract(epoch FROM now() - checked_at)::float8 AS age_seconds
  FROM slack_user_checks WHERE tenant_id = %s AND slack_user_id = %s
"""
REMEMBER_SQL = """
INSERT INTO slack_user_checks (tenant_id, slack_user_id, team_id, enterprise_id, is_admin)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, slack_user_id) DO UPDATE
   SET team_id = EXCLUDED.team_id, enterprise_id = EXCLUDED.enterprise_id,
       is_admin = EXCLUDED.is_admin, checked_at = now()
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""  # for people, when not allowed
    slack_unavailable: bool = False  # refused only because Slack could not be asked


class SlackUnavailable(Exception):
    """Slack could not say who someone is (rate limit, error, timeout): retry later."""


@dataclass(frozen=True)
class Organisation:
    """The tenant's own Slack organisation: its workspace, or its Enterprise Grid org."""

    team_id: str
    enterprise_id: str
    is_enterprise_install: bool

    def includes(self, team_id: str | None, enterprise_id: str | None = None) -> bool:
        if self.enterprise_id and enterprise_id == self.enterprise_id:
            return True  # another workspace of the same Enterprise Grid organisation
        return not self.is_enterprise_install and bool(team_id) and team_id == self.team_id


@dataclass(frozen=True)
class Person:
    """What Slack said about a user, and how many seconds ago."""

    team_id: str
    enterprise_id: str
    is_admin: bool
    age_seconds: float = 0.0


def person_from_slack(user: dict[str, Any]) -> Person:
    enterprise = (user.get("enterprise_user") or {}).get("enterprise_id") or ""
    return Person(str(user.get("team_id") or ""), str(enterprise), slack_admin(user))


def slack_admin(user: dict[str, Any]) -> bool:
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


# --- In a worker: decisions on pending actions --------------------------------------------


def may_approve(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    settings: ReviewSettings,
    user_id: str,
    requested_by: str,
    *,
    user_team: str | None = None,
) -> Verdict:
    """Whether `user_id` may decide on an action. `user_team` is the team the signed
    request itself names (buttons and modals carry it; reactions do not).

    Raises SlackUnavailable when Slack must be asked and cannot answer: the job retries.
    """
    organisation = load_organisation(conn, settings.tenant_id)
    if user_team is not None and not organisation.includes(user_team):
        return _outsider(settings.tenant_id)
    if settings.four_eyes and user_id == requested_by:
        return Verdict(
            False, "you asked for this action, and this workspace needs someone else to approve it"
        )
    approvers = people.approvers(conn, settings.tenant_id)
    named = (
        user_id in approvers
        or (
            settings.approver_group_id is not None
            and user_id in _group_members(client, settings.approver_group_id)
        )
        or _escalated_to(client, settings, user_id)
    )
    if named:
        if user_team is None:
            person = _person(conn, client, settings.tenant_id, user_id, max_age=None)
            if not organisation.includes(person.team_id, person.enterprise_id):
                return _outsider(settings.tenant_id)
        return Verdict(True)
    if approvers or settings.approver_group_id:
        return Verdict(False, NOT_APPROVER)
    # With no approvers configured yet, the organisation's admins decide.
    if people.is_admin(conn, settings.tenant_id, user_id):
        return Verdict(True)
    person = _person(conn, client, settings.tenant_id, user_id, max_age=ADMIN_TTL)
    if not organisation.includes(person.team_id, person.enterprise_id):
        return _outsider(settings.tenant_id)
    return Verdict(True) if person.is_admin else Verdict(False, NOT_APPROVER)


def load_organisation(conn: Connection[dict[str, Any]], tenant_id: int) -> Organisation:
    row = conn.execute(ORGANISATION_SQL, (tenant_id,)).fetchone()
    assert row is not None, f"tenant {tenant_id} has no Slack installation"
    return Organisation(**row)


def _person(
    conn: Connection[dict[str, Any]],
    client: WebClient,
    tenant_id: int,
    user_id: str,
    *,
    max_age: float | None,
) -> Person:
    """The stored answer if young enough (None: any age), else Slack's, stored."""
    row = conn.execute(KNOWN_SQL, (tenant_id, user_id)).fetchone()
    if row is not None and (max_age is None or row["age_seconds"] < max_age):
        return Person(**row)
    try:
        person = person_from_slack(client.users_info(user=user_id).get("user") or {})
    except SlackClientError as exc:
        log.warning("authority.slack_unavailable", error=_error_name(exc))
        raise SlackUnavailable(f"users.info failed: {_error_name(exc)}") from exc
    conn.execute(
        REMEMBER_SQL,
        (tenant_id, user_id, person.team_id, person.enterprise_id, person.is_admin),
    )
    return person


def _escalated_to(client: WebClient, settings: ReviewSettings, user_id: str) -> bool:
    """Whether the action was escalated to this person, or to a user group they are in."""
    for mention in settings.escalated_to:
        found = MENTIONED.fullmatch(mention)
        if found is None:
            continue
        if found.group("user") == user_id:
            return True
        if found.group("group") and user_id in _group_members(client, found.group("group")):
            return True
    return False


def _group_members(client: WebClient, group_id: str) -> set[str]:
    try:
        return set(client.usergroups_users_list(usergroup=group_id).get("users") or [])
    except SlackApiError:
        return set()


# --- In the listener: /agent commands, answered within Slack's 3 seconds -------------------


async def check_member(
    pool: AsyncPool, client: AsyncWebClient, tenant_id: int, user_id: str
) -> Verdict:
    """Whether the person belongs to the tenant's organisation (any /agent command)."""
    async with pool.connection() as conn:
        if await people.is_admin_async(conn, tenant_id, user_id):
            return Verdict(True)
        organisation, known = await _organisation_and_known(conn, tenant_id, user_id)
        person = known
        if person is None:
            person = await _ask_slack(conn, client, tenant_id, user_id)
        if person is None:
            return Verdict(False, SLACK_UNAVAILABLE, slack_unavailable=True)
        if not organisation.includes(person.team_id, person.enterprise_id):
            return _outsider(tenant_id)
        return Verdict(True)


async def check_admin(
    pool: AsyncPool,
    client: AsyncWebClient,
    tenant_id: int,
    user_id: str,
    *,
    emergency: bool = False,
) -> Verdict:
    """Whether the person may run a changing /agent command: one of the app's own admins,
    or a workspace admin of the tenant's organisation. `emergency` (pause) accepts an
    older admin verdict when Slack cannot answer."""
    async with pool.connection() as conn:
        if await people.is_admin_async(conn, tenant_id, user_id):
            return Verdict(True)
        organisation, known = await _organisation_and_known(conn, tenant_id, user_id)
        person = known if known is not None and known.age_seconds < ADMIN_TTL else None
        if person is None:
            person = await _ask_slack(conn, client, tenant_id, user_id)
        if person is None and emergency and known and known.age_seconds < EMERGENCY_STALE:
            log.warning("authority.stale_admin_verdict_used", age_seconds=known.age_seconds)
            person = known
        if person is None:
            return Verdict(False, SLACK_UNAVAILABLE, slack_unavailable=True)
        if not organisation.includes(person.team_id, person.enterprise_id):
            return _outsider(tenant_id)
        if not person.is_admin:
            return Verdict(False, "only workspace admins and this app's admins can do that")
        return Verdict(True)


async def _organisation_and_known(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, user_id: str
) -> tuple[Organisation, Person | None]:
    row = await (await conn.execute(ORGANISATION_SQL, (tenant_id,))).fetchone()
    assert row is not None, f"tenant {tenant_id} has no Slack installation"
    known = await (await conn.execute(KNOWN_SQL, (tenant_id, user_id))).fetchone()
    return Organisation(**row), Person(**known) if known is not None else None


async def _ask_slack(
    conn: AsyncConnection[dict[str, Any]],
    client: AsyncWebClient,
    tenant_id: int,
    user_id: str,
) -> Person | None:
    """Slack's answer, stored; None when Slack does not give one in time."""
    try:
        async with asyncio.timeout(SLACK_TIMEOUT):
            response = await client.users_info(user=user_id)
    except (SlackClientError, TimeoutError) as exc:
        log.warning("authority.slack_unavailable", error=_error_name(exc))
        return None
    person = person_from_slack(response.get("user") or {})
    await conn.execute(
        REMEMBER_SQL, (tenant_id, user_id, person.team_id, person.enterprise_id, person.is_admin)
    )
    return person


def _outsider(tenant_id: int) -> Verdict:
    # Logged without the person's id: a count per tenant is what operators need.
    log.info("authority.outsider_refused", tenant_id=tenant_id)
    return Verdict(False, OUTSIDER)


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return type(exc).__name__
