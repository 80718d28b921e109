"""The Slack references typed after `/agent`: people, channels and user groups."""

from __future__ import annotations

import re

USER_REF = re.compile(r"^<@(?P<id>[UW][A-Z0-9]+)(\|[^>]*)?>$|^(?P<raw>[UW][A-Z0-9]+)$")
CHANNEL_REF = re.compile(r"^<#(?P<id>[CG][A-Z0-9]+)(\|[^>]*)?>$|^(?P<raw>[CG][A-Z0-9]+)$")
USERGROUP_REF = re.compile(r"^<!subteam\^(?P<id>S[A-Z0-9]+)(\|[^>]*)?>$|^(?P<raw>S[A-Z0-9]+)$")


def user_id(ref: str) -> str | None:
    """`<@U123|ann>` or `U123` → `U123`; None when it is not a person."""
    return _id(USER_REF.match(ref))


def channel_id(ref: str) -> str | None:
    """`<#C123|general>` or `C123` → `C123`; None when it is not a channel."""
    return _id(CHANNEL_REF.match(ref))


def usergroup_id(ref: str) -> str | None:
    """`<!subteam^S123|team>` or `S123` → `S123`; None when it is not a user group."""
    return _id(USERGROUP_REF.match(ref))


def _id(match: re.Match[str] | None) -> str | None:
    return (match.group("id") or match.group("raw")) if match else None
