"""What the model is asked to return: the schemas sent as the response format."""

from __future__ import annotations

import json

import jsonschema
import pytest

from core.llm.structured import response_format_for
from core.schemas import Draft, Plan, draft_for, plan_for, salvaged_draft


def _draft_schema(sources: int) -> dict[str, object]:
    format_ = response_format_for(draft_for(sources))
    assert format_["json_schema"]["name"] == "Draft"
    schema: dict[str, object] = format_["json_schema"]["schema"]
    return schema


def test_a_draft_shown_no_sources_may_write_no_markers_and_cite_nothing() -> None:
    """A runaway "[1][2]...[20] [20] [20]" cannot start where the server keeps to the schema."""
    schema = _draft_schema(0)

    jsonschema.validate({"answer": "Hank is free at 10:00 UTC.", "citations": []}, schema)
    jsonschema.validate({"answer": "Two lines:\n- one\n- two", "citations": []}, schema)
    for runaway in (
        {"answer": "Hank is free [1][2][3]", "citations": []},
        {"answer": "Hank is free.", "citations": ["1"]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(runaway, schema)


def test_a_draft_shown_sources_cites_them_as_before() -> None:
    schema = _draft_schema(2)

    jsonschema.validate({"answer": "Tokens expire every 90 days [2].", "citations": ["2"]}, schema)
    assert draft_for(2) is Draft


def test_a_reply_is_read_alike_whichever_schema_was_sent() -> None:
    """A server may ignore the pattern: the reply still parses, and Verify judges it."""
    reply = '{"answer": "Free [1]", "citations": ["1"]}'

    parsed = draft_for(0).model_validate_json(reply)

    assert parsed.model_dump() == Draft.model_validate_json(reply).model_dump()


LOOPING = (
    '{"answer": "Everyone gets 25 days of holiday a year [1].\\nBook it in BambooHR:\\n'
    "- two weeks ahead [1]\\n- your manager approves it [1]\\n"
    + "Everyone gets 25 days of holiday a year [1]. " * 30
    + "Everyone gets 25"
)


def test_a_draft_cut_off_while_repeating_itself_keeps_what_it_said_before_the_loop() -> None:
    kept = salvaged_draft(LOOPING)

    assert kept == Draft(
        answer="Everyone gets 25 days of holiday a year [1].\nBook it in BambooHR:\n"
        "- two weeks ahead [1]\n- your manager approves it [1]",
        citations=[],
    )


def test_a_cut_off_draft_loses_the_sentence_the_cap_cut_into() -> None:
    cut = '{"answer": "Refunds take 5 business days [1]. They go back to the ori'
    cut_in_an_escape = '{"answer": "Caf\\u00e9 opens at 9 [1]. It closes at \\u00'

    assert salvaged_draft(cut) == Draft(answer="Refunds take 5 business days [1].", citations=[])
    assert salvaged_draft(cut_in_an_escape) == Draft(answer="Café opens at 9 [1].", citations=[])


def test_a_draft_cut_off_after_its_answer_keeps_the_whole_answer() -> None:
    cut_in_citations = '{"answer": "Tokens expire every 90 days [2].", "citations": ["2", "2", "2'

    assert salvaged_draft(cut_in_citations) == Draft(
        answer="Tokens expire every 90 days [2].", citations=[]
    )


@pytest.mark.parametrize(
    "content",
    [
        '{"answer": "Customers may return Customers may return Customers may',
        '{"answer": "[1][2][3][4][5][6][7][8][9][10][11]\\n[12][13]',
        '{"citations": ["1"], "answer": "Tokens expire every 90 days [2]. They',
        "I think the answer is 25 days. Or",
    ],
)
def test_a_cut_off_reply_with_no_whole_sentence_is_not_taken(content: str) -> None:
    assert salvaged_draft(content) is None


def test_a_plan_is_written_calls_first_and_its_intent_last() -> None:
    """A server that keeps to the schema makes the model write the fields in its order.
    Made to choose its intent first, the 1.5B model answered "Set ticket 318 to pending"
    with "decline" and no call, twice in two tries; writing its calls first, it called
    zendesk_set_status both times. A plan read back keeps that order too, as the earlier
    turns the model is shown."""
    schema = response_format_for(plan_for([]))["json_schema"]["schema"]
    plan = Plan(intent="answer", search_queries=["vpn"], tool_calls=[])

    assert list(schema["properties"]) == ["tool_calls", "search_queries", "intent"]
    assert schema["required"] == ["tool_calls", "search_queries", "intent"]
    assert list(json.loads(plan.model_dump_json())) == ["tool_calls", "search_queries", "intent"]
