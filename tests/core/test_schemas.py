"""What the model is asked to return: the schemas sent as the response format."""

from __future__ import annotations

import jsonschema
import pytest

from core.llm.structured import response_format_for
from core.schemas import Draft, draft_for


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
