"""Which messages ask for a summary, of what, and since when (in the workspace's zone)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.summaries.request import parse_summary_request

PARIS = ZoneInfo("Europe/Paris")
# Thursday 10 December 2026, 15:30 in Paris.
NOW = datetime(2026, 12, 10, 14, 30, tzinfo=UTC)


def parse(text: str, *, in_thread: bool = False, zone: ZoneInfo = PARIS):  # type: ignore[no-untyped-def]
    return parse_summary_request(text, now=NOW, zone=zone, in_thread=in_thread)


@pytest.mark.parametrize(
    "text",
    [
        "<@U0BOT> summarise this thread",
        "Can you summarize the thread please?",
        "tl;dr of this conversation",
        "<@U0BOT> sum up this discussion",
    ],
)
def test_thread_summary_requests(text: str) -> None:
    wanted = parse(text, in_thread=True)
    assert wanted is not None and wanted.target == "thread" and wanted.channel_id is None


def test_what_did_i_miss_in_a_channel_since_monday() -> None:
    wanted = parse("what did I miss in <#C0SUPPORT|support> since Monday?")
    assert wanted is not None
    assert (wanted.target, wanted.channel_id) == ("channel", "C0SUPPORT")
    # Monday 7 December, midnight in Paris: 23:00 UTC the day before.
    assert wanted.since == datetime(2026, 12, 7, tzinfo=PARIS)
    assert wanted.since.astimezone(UTC) == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)


def test_since_a_weekday_named_on_that_day_means_a_week_ago() -> None:
    wanted = parse("catch me up on <#C0SUPPORT> since Thursday")
    assert wanted is not None and wanted.since == datetime(2026, 12, 3, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("what did I miss since yesterday", datetime(2026, 12, 9, tzinfo=PARIS)),
        ("recap of this channel today", datetime(2026, 12, 10, tzinfo=PARIS)),
        ("catch me up since 2026-12-01", datetime(2026, 12, 1, tzinfo=PARIS)),
        ("catch me up since 3rd Dec", datetime(2026, 12, 3, tzinfo=PARIS)),
        ("what did I miss since Nov 30", datetime(2026, 11, 30, tzinfo=PARIS)),
        ("summary of this channel this week", datetime(2026, 12, 7, tzinfo=PARIS)),
        ("what did I miss in the last 3 hours", datetime(2026, 12, 10, 11, 30, tzinfo=UTC)),
        ("catch me up: past 2 days", datetime(2026, 12, 8, 14, 30, tzinfo=UTC)),
    ],
)
def test_since_dates(text: str, since: datetime) -> None:
    wanted = parse(text)
    assert wanted is not None and wanted.since == since


def test_a_date_in_the_future_of_this_year_means_last_year() -> None:
    wanted = parse("catch me up since 20 December")
    assert wanted is not None and wanted.since == datetime(2025, 12, 20, tzinfo=PARIS)


def test_bare_catch_up_means_the_thread_in_a_thread_and_the_channel_at_the_top() -> None:
    in_thread = parse("what did I miss?", in_thread=True)
    at_top = parse("what did I miss?")
    assert in_thread is not None and in_thread.target == "thread"
    assert at_top is not None and at_top.target == "channel" and at_top.channel_id is None


@pytest.mark.parametrize(
    "text", ["summary please", "<@U0BOT> tl;dr", "Could you give me a quick recap?"]
)
def test_the_summary_word_alone_is_a_request(text: str) -> None:
    assert parse(text, in_thread=True) is not None


@pytest.mark.parametrize(
    "text",
    [
        "What's the summary of our refund policy?",
        "Summarise the Q3 pricing doc for a customer",
        "email alice@customer.example about her renewal",
        "what happens when an invoice is late?",
        "can you recap how SSO works",
    ],
)
def test_questions_are_not_summary_requests(text: str) -> None:
    assert parse(text, in_thread=True) is None


def test_a_channel_typed_as_text_is_named_back() -> None:
    wanted = parse("what did I miss in #suport since Monday")
    assert wanted is not None and wanted.unknown_channel == "suport"


def test_the_heading_says_the_window_as_people_do() -> None:
    from bot.summaries.job import _since_words

    monday = parse("what did I miss since Monday")
    last = parse("catch me up: past 2 days")
    assert monday is not None and last is not None
    assert _since_words(monday, PARIS) == "since Monday 7 December"
    assert _since_words(last, PARIS) == "in the past 2 days"


def test_here_names_the_channel_only_in_a_bare_request_or_a_catch_up() -> None:
    assert parse("summarise what the doc says here", in_thread=True) is None
    bare = parse("summary here please")
    missed = parse("what did I miss here?")
    assert bare is not None and bare.target == "channel"
    assert missed is not None and missed.target == "channel"
