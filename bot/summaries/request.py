"""Telling a summary request from a question, without the model.

"@chatops summarise this thread", "what did I miss in #support since Monday?", "catch me
up on <#C…> in the last 3 days", "tl;dr": a few explicit phrases, a channel reference
and a since-date. Anything else ("what's the summary of our refund policy?") is a
question for the agent loop. Dates are read in the workspace's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Target = Literal["thread", "channel"]

# Asking for a summary outright: the words that need a target ("summarise this thread").
SUMMARY_WORDS = re.compile(
    r"\b(summari[sz]e|summari[sz]ing|summary|sum\s+up|recap|tl;?\s?dr)\b", re.IGNORECASE
)
# Asking to be caught up: a summary whatever follows ("what did I miss?").
CATCH_UP = re.compile(
    r"\b(what\s+(?:did|have)\s+i\s+miss(?:ed)?|catch\s+(?:me\s+)?up|bring\s+me\s+up\s+to\s+speed"
    r"|what(?:'s|\s+has)\s+happened)\b",
    re.IGNORECASE,
)
CHANNEL_REF = re.compile(r"<#(?P<id>[CG][A-Z0-9]+)(?:\|(?P<name>[^>]*))?>")
# "#support" typed as text: Slack turns a channel's name into a reference (<#C…>) when
# it exists, so this is a channel Slack did not recognise.
PLAIN_CHANNEL = re.compile(r"(?<![<\w|])#(?P<name>[a-z0-9][a-z0-9_-]*)", re.IGNORECASE)
THIS_THREAD = re.compile(
    r"\b(?:this|the|that)\s+(?:thread|conversation|discussion)\b", re.IGNORECASE
)
# "here" alone is too common ("summarise what the doc says here") to name the channel; it
# counts as filler in a bare request ("summary here please") instead.
THIS_CHANNEL = re.compile(r"\b(?:this|the)\s+channel\b|\bin\s+here\b", re.IGNORECASE)
# What may surround the words of a bare request ("could you give me a quick summary?").
FILLER = frozenset(
    [
        "please",
        "pls",
        "can",
        "could",
        "would",
        "you",
        "give",
        "me",
        "us",
        "a",
        "an",
        "quick",
        "short",
        "brief",
        "of",
        "the",
        "it",
        "for",
        "to",
        "do",
        "make",
        "write",
        "here",
    ]
)
SLACK_MARKUP = re.compile(r"<[@!][^>]*>")

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = [
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
]  # first three letters
SINCE_WEEKDAY = re.compile(
    r"\b(?:since|from)\s+(?:last\s+)?(?P<day>" + "|".join(WEEKDAYS) + r")\b", re.IGNORECASE
)
SINCE_RELATIVE_DAY = re.compile(r"\b(?:since\s+)?(?P<word>yesterday|today)\b", re.IGNORECASE)
LAST_N = re.compile(
    r"\b(?:in\s+the\s+|over\s+the\s+)?(?:last|past)\s+(?P<n>\d{1,3})\s*"
    r"(?P<unit>hours?|hrs?|h|days?|d|weeks?|w)\b",
    re.IGNORECASE,
)
THIS_WEEK = re.compile(r"\bthis\s+week\b", re.IGNORECASE)
SINCE_ISO = re.compile(r"\bsince\s+(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b", re.IGNORECASE)
SINCE_DAY_MONTH = re.compile(
    r"\bsince\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?P<mon>[a-z]{3})[a-z]*\.?\b", re.IGNORECASE
)
SINCE_MONTH_DAY = re.compile(
    r"\bsince\s+(?P<mon>[a-z]{3})[a-z]*\.?\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?\b", re.IGNORECASE
)


@dataclass(frozen=True)
class SummaryRequest:
    target: Target
    # The channel named in the request (<#C…>); None: the channel asked in, or the one
    # the person is viewing in the assistant panel.
    channel_id: str | None = None
    since: datetime | None = None  # aware; None: the whole thread, or the default window
    said_since: str | None = None  # how the person put it ("since Monday"), for the reply
    unknown_channel: str | None = None  # "#name" typed as text, not a channel reference


def parse_summary_request(
    text: str, *, now: datetime, zone: ZoneInfo, in_thread: bool
) -> SummaryRequest | None:
    """The summary ``text`` asks for, or None when it is not a summary request.

    ``in_thread``: asked as a reply in a thread, where a bare "what did I miss?" means
    that thread; at the top of a channel it means the channel.
    """
    plain = SLACK_MARKUP.sub(" ", text)
    channel = CHANNEL_REF.search(text)
    catch_up = CATCH_UP.search(plain)
    asked = SUMMARY_WORDS.search(plain)
    if not (catch_up or asked):
        return None
    since, said = parse_since(CHANNEL_REF.sub(" ", plain), now=now, zone=zone)
    target: Target
    typed = PLAIN_CHANNEL.search(CHANNEL_REF.sub(" ", plain))
    if channel:
        target = "channel"
    elif typed:
        return SummaryRequest(target="channel", unknown_channel=typed.group("name"))
    elif THIS_THREAD.search(plain):
        target = "thread"
    elif THIS_CHANNEL.search(plain):
        target = "channel"
    elif catch_up or _bare(plain, asked, said):
        target = "thread" if in_thread and since is None else "channel"
    else:
        return None  # "the summary of our refund policy": a question, not a request
    return SummaryRequest(
        target=target,
        channel_id=channel.group("id") if channel else None,
        since=since,
        said_since=said,
    )


def _bare(plain: str, asked: re.Match[str] | None, said: str | None) -> bool:
    """Whether the text is the summary word alone, with only polite filler and a date."""
    if asked is None:
        return False
    rest = plain.replace(asked.group(0), " ")
    if said:
        rest = rest.replace(said, " ")
    words = [w for w in re.findall(r"[a-z']+", rest.lower()) if w not in FILLER]
    return not words


def parse_since(text: str, *, now: datetime, zone: ZoneInfo) -> tuple[datetime | None, str | None]:
    """The moment the text's "since …" names, at local midnight for a day, and the words
    that said it; (None, None) when it names none."""
    local_now = now.astimezone(zone)
    today = local_now.date()
    if match := LAST_N.search(text):
        n, unit = int(match.group("n")), match.group("unit").lower()
        span = (
            timedelta(hours=n)
            if unit.startswith("h")
            else timedelta(weeks=n)
            if unit.startswith("w")
            else timedelta(days=n)
        )
        return now - span, match.group(0).strip()
    if match := SINCE_ISO.search(text):
        try:
            day = date(int(match.group("y")), int(match.group("m")), int(match.group("d")))
        except ValueError:
            return None, None
        return _midnight(day, zone), match.group(0)
    for pattern in (SINCE_DAY_MONTH, SINCE_MONTH_DAY):
        if (match := pattern.search(text)) and match.group("mon").lower() in MONTHS:
            month = MONTHS.index(match.group("mon").lower()) + 1
            try:
                day = date(today.year, month, int(match.group("d")))
                if day > today:
                    day = date(today.year - 1, month, int(match.group("d")))
            except ValueError:
                return None, None
            return _midnight(day, zone), match.group(0)
    if match := SINCE_WEEKDAY.search(text):
        weekday = WEEKDAYS.index(match.group("day").lower())
        # The last such day before today: "since Monday" said on a Monday means a week ago.
        back = (today.weekday() - weekday) % 7 or 7
        return _midnight(today - timedelta(days=back), zone), match.group(0)
    if match := THIS_WEEK.search(text):
        return _midnight(today - timedelta(days=today.weekday()), zone), match.group(0)
    if match := SINCE_RELATIVE_DAY.search(text):
        day = today if match.group("word").lower() == "today" else today - timedelta(days=1)
        return _midnight(day, zone), match.group(0)
    return None, None


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone)
