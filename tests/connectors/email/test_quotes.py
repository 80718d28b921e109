"""New text apart from quoted history and signature, as mail clients actually write them."""

from __future__ import annotations

from connectors.email.html_text import html_to_text
from connectors.email.quotes import split_body


def test_gmail_style_top_post() -> None:
    """Text above "On ... wrote:" is new; the attribution and everything below is history."""
    body = (
        "Yes, Tuesday works.\n\n"
        "On Mon, 3 Jun 2024 at 10:02, Support <help@acme.example> wrote:\n"
        "> Would Tuesday suit you?\n"
    )
    split = split_body(body)
    assert split.new == "Yes, Tuesday works."
    assert split.quoted.startswith("On Mon, 3 Jun 2024") and "Would Tuesday" in split.quoted


def test_wrapped_attribution_line() -> None:
    """An attribution wrapped over two lines is still recognised."""
    body = (
        "Thanks!\n\nOn Mon, 3 Jun 2024 at 10:02, Support Team <\nhelp@acme.example> wrote:\n> hi\n"
    )
    assert split_body(body).new == "Thanks!"


def test_outlook_header_block() -> None:
    """Outlook's From:/Sent:/To:/Subject: block starts the history, without "> " prefixes."""
    body = (
        "Please cancel the order.\n\n"
        "From: Support <help@acme.example>\n"
        "Sent: Monday, June 3, 2024 10:02 AM\n"
        "To: Alice <alice@customer.example>\n"
        "Subject: RE: Order 1234\n\n"
        "Your order has shipped.\n"
    )
    split = split_body(body)
    assert split.new == "Please cancel the order."
    assert "Your order has shipped." in split.quoted


def test_original_message_separator() -> None:
    """ "-----Original Message-----" starts the history."""
    split = split_body("New question.\n\n-----Original Message-----\nOld answer.\n")
    assert split.new == "New question." and "Old answer." in split.quoted


def test_interleaved_reply_keeps_the_answers() -> None:
    """Inline answers between quoted lines are new text; the quoted lines are not."""
    body = "> What size?\nLarge, please.\n> Which colour?\nBlue.\n"
    split = split_body(body)
    assert split.new == "Large, please.\nBlue."
    assert split.quoted == "> What size?\n> Which colour?"


def test_signature_after_delimiter_and_mobile_footer() -> None:
    """The RFC 3676 "-- " delimiter and "Sent from my iPhone" footers are the signature."""
    signed = split_body("See you then.\n\n-- \nAlice Example\nHead of Ops\n")
    assert signed.new == "See you then." and signed.signature == "Alice Example\nHead of Ops"
    mobile = split_body("On my way.\n\nSent from my iPhone\n")
    assert mobile.new == "On my way." and mobile.signature == "Sent from my iPhone"


def test_plain_message_is_all_new() -> None:
    """A message with no quote or signature is kept whole."""
    text = "Hi,\n\nCould you send me last month's invoice?\n\nThanks,\nAlice"
    split = split_body(text)
    assert split.new == text and split.quoted == "" and split.signature == ""


def test_html_blockquote_is_quoted_history() -> None:
    """In HTML mail, blockquoted content is marked as quoted text."""
    html = (
        "<html><head><style>p{color:red}</style></head><body>"
        "<div>Sounds good, thanks!</div><br>"
        '<div class="gmail_quote">On Mon, Support wrote:<br>'
        "<blockquote><p>We can ship on <b>Friday</b>.</p></blockquote></div>"
        "</body></html>"
    )
    text = html_to_text(html)
    assert "color:red" not in text
    split = split_body(text)
    assert split.new == "Sounds good, thanks!"
    assert "> We can ship on Friday." in split.quoted


def test_html_lists_and_entities() -> None:
    """List items become dashes and entities are decoded."""
    text = html_to_text(
        "<p>Options:</p><ul><li>Tom &amp; Jerry</li><li>5&nbsp;&lt;&nbsp;6</li></ul>"
    )
    assert text == "Options:\n\n- Tom & Jerry\n- 5 < 6"
