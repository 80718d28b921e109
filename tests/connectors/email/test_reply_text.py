"""The agent's Slack-formatted answer, as the plain-text email a customer reads."""

from __future__ import annotations

from connectors.email.reply_text import email_body, plain_text

ANSWER = (
    "Your *renewal* is due on _1 May_ [1][2]. See <https://help.example.com/renew|the renewal "
    "page> or write to <mailto:billing@acme.example|billing@acme.example> :wave:\n"
    "• Log in\n• Open ~old~ *Billing*\n> Renewals need a valid card.\n\n"
    "*Sources*\n[1] <https://kb.internal/renewals|Renewals runbook (internal)>\n[2] Pricing 2026"
)


def test_mrkdwn_citations_and_the_sources_list_are_gone() -> None:
    text = plain_text(ANSWER)
    assert text == (
        "Your renewal is due on 1 May. See the renewal page (https://help.example.com/renew) "
        "or write to billing@acme.example\n"
        "- Log in\n- Open old Billing\nRenewals need a valid card."
    )
    assert "Sources" not in text and "runbook" not in text and "kb.internal" not in text


def test_a_greeting_by_first_name_and_a_sign_off_are_added_once() -> None:
    body = email_body(
        "Your order ships tomorrow.", recipient_name="Alice Example", signature="Acme"
    )
    assert body == "Hello Alice,\n\nYour order ships tomorrow.\n\nBest regards,\nAcme"
    # A draft that already greets and signs keeps its own.
    own = "Hi Bob,\n\nIt ships tomorrow.\n\nKind regards,\nDana"
    assert email_body(own, recipient_name="Bob Smith", signature="Acme") == own


def test_no_name_means_a_plain_hello_never_an_address() -> None:
    assert email_body("Done.", recipient_name="").startswith("Hello,\n\n")
    assert email_body("Done.", recipient_name="bob@x.example").startswith("Hello,\n\n")


def test_snake_case_times_and_lone_asterisks_are_left_alone() -> None:
    assert plain_text("set max_retries at 10:30:00, 2 * 3 = 6") == (
        "set max_retries at 10:30:00, 2 * 3 = 6"
    )
