"""Reading the Draft's answer out of JSON the model has only partly written, and showing
only what already passes the citation checks."""

from __future__ import annotations

from bot.agent.draft_preview import DraftPreview, grounded_prefix, partial_answer
from core.knowledge import Passage

SOURCES = [
    Passage(id="vpn.md#1", title="VPN", text="Reset tokens in the portal."),
    Passage(id="refunds.md#1", title="Refunds", text="45 days for hardware."),
]


def test_the_answer_is_read_from_json_cut_off_anywhere() -> None:
    """Cut inside a string, an escape or before the answer, the text so far is returned."""
    assert partial_answer('{"answer": "Reset the tok') == "Reset the tok"
    assert partial_answer('{"answer": "Line one\\nLine') == "Line one\nLine"
    assert partial_answer('{"answer": "Caf\\u00') == "Caf"
    assert partial_answer('{"citations": ["1"], "ans') == ""
    assert partial_answer('{"answer": "Done [1].", "citations": ["1"]}') == "Done [1]."
    assert partial_answer("not json at all") == ""


def test_with_sources_a_claim_shows_once_its_citation_has_arrived() -> None:
    """In the line being written, text after the latest valid citation waits; a finished
    unsupported claim, or a citation of a source that was not given, ends the preview."""
    claim = "Open the portal and press Reset token [1]"
    assert grounded_prefix("Open the portal", SOURCES) == ""
    assert grounded_prefix(f"{claim} and confirm", SOURCES) == claim
    assert grounded_prefix(f"Steps:\n{claim}. Then", SOURCES) == f"Steps:\n{claim}"
    assert grounded_prefix("Refunds take 90 days [7] and", SOURCES) is None
    assert grounded_prefix("Refunds take 90 days, always.\nAnd", SOURCES) is None


def test_a_finished_line_without_markers_shows_with_the_markers_verify_adds() -> None:
    """Small models write no [n]: Verify adds them, so the preview shows the line as it
    will be posted, as soon as the line is finished."""
    answer = "Open the portal and press Reset token.\n\nHardware refunds take 45 days.\nAlso"

    assert grounded_prefix(answer, SOURCES) == (
        "Open the portal and press Reset token [1].\n\nHardware refunds take 45 days [2].\n"
    )


def test_without_sources_text_shows_until_a_citation_is_invented() -> None:
    """Nothing to ground in: every word may show, and any citation is made up."""
    assert grounded_prefix("We ship to most countries", []) == "We ship to most countries"
    assert grounded_prefix("We ship to Switzerland [1]", []) is None


def test_a_draft_failing_the_checks_ends_the_preview() -> None:
    """After an invented citation nothing more is shown, even of a later draft."""
    shown: list[str] = []
    preview = DraftPreview(shown.append)
    sink = preview.for_sources(SOURCES)
    claim = "Open the portal and press Reset token [1]"
    sink(f'{{"answer": "{claim} and')
    sink(f'{{"answer": "{claim} and ship it [9]')
    preview.for_sources(SOURCES)(f'{{"answer": "{claim} and reset [2]')
    assert shown == [claim] and not preview.enabled


def test_a_failing_preview_turns_itself_off() -> None:
    """An error while showing the draft stops the preview instead of the model call."""
    shown: list[str] = []

    def show(text: str) -> None:
        shown.append(text)
        raise RuntimeError("database went away")

    preview = DraftPreview(show)
    preview.for_sources([])('{"answer": "One ')
    preview.for_sources([])('{"answer": "One two ')
    assert shown == ["One "] and not preview.enabled


def test_a_not_found_reply_is_never_previewed() -> None:
    """It is posted as the plain not-found answer; the model's wording of it, with the
    markers small models put on it, would only be shown and then replaced."""
    passages = [Passage("1", "VPN", "Open the portal.")]

    assert (
        grounded_prefix("Sorry, I couldn't find this in the knowledge base [1]", passages) is None
    )
    assert grounded_prefix("I could not find", passages) is None
