"""The sandbox workspace, used in a real headless Chromium the way a person would.

Every click here reaches the product only as Slack and email would reach it: signed
events and interactions from the Slack emulator, the Web API, SMTP. The model is the
scripted OpenAI emulator.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from testbed.conversation import plan_calling
from testbed.markers import new_marker
from tests.support.conversation import script_answer, unique_question

REQUESTER, APPROVER, ADMIN = "U0REQUESTER", "U0APPROVER", "U0ADMIN"
SUPPORT, APPROVALS, GENERAL = "C0SUPPORT", "C0APPROVALS", "C0GENERAL"
CUSTOMER = "alice@customer.example"
MASKED = "a***@customer.example"  # the sandbox tenant's approver view of CUSTOMER
BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{60,}")
AGENT_WORK = 120_000  # ms: a worker drafting through the whole pipeline on a busy machine


def act_as(page: Any, user_id: str) -> None:
    page.select_option("#person", user_id)


def open_channel(page: Any, channel_id: str) -> None:
    """Click the channel in the sidebar until it is the one shown: the sidebar is drawn
    again on every update, and a click landing as it redraws can miss (a CI run under
    load then looked for the approval card in #support)."""
    shown = page.locator(f"a.channel-link.active[data-channel={channel_id}]")
    for _ in range(3):
        page.click(f"a.channel-link[data-channel={channel_id}]")
        try:
            expect(shown).to_have_count(1, timeout=5_000)
            return
        except AssertionError:
            continue
    expect(shown).to_have_count(1)


def write(page: Any, text: str, *, composer: str = "#message-input") -> None:
    page.fill(composer, text)
    page.press(composer, "Enter")


def channel_message(page: Any, containing: str) -> Any:
    return page.locator("#messages .message", has_text=containing)


def open_thread_of(page: Any, containing: str) -> Any:
    """Open the thread of the channel message containing `containing`; returns the pane."""
    page.locator("#messages .message", has_text=containing).locator(".open-thread").first.click()
    return page.locator("#thread-messages")


def script_email_request(llm: OpenAIEmulator, marker: str) -> None:
    """The model answers a request carrying `marker` with a send_email call to the customer
    (it sees the address only as the placeholder it was given)."""
    call = {
        "name": "send_email",
        "arguments": {
            "to": ["<EMAIL_1>"],
            "subject": f"Renewal {marker}",
            "text": f"Hi Alice! {marker}",
        },
        "reason": "The requester asked to email the customer.",
    }
    llm.script(
        Reply(content=plan_calling(call)),
        Reply(content={"answer": "I drafted the email; it waits for approval.", "citations": []}),
        match=marker,
    )


def ask_for_an_email(page: Any, llm: OpenAIEmulator) -> str:
    """As the requester in #support, ask the bot to email the customer; returns the marker."""
    marker = new_marker(8)
    script_email_request(llm, marker)
    act_as(page, REQUESTER)
    open_channel(page, SUPPORT)
    write(page, f"@chatops please email {CUSTOMER} about the renewal {marker}")
    return marker


def approval_card(page: Any, marker: str) -> Any:
    open_channel(page, APPROVALS)
    card = page.locator(
        f"#messages .message[data-channel={APPROVALS}]", has_text=f"Renewal {marker}"
    )
    expect(card).to_contain_text("Approval needed", timeout=AGENT_WORK)
    return card


def assert_reads_as_people_read(text: str) -> None:
    """No placeholder, internal id, encoding or Python list on what a person sees."""
    assert "<EMAIL_" not in text and "EMAIL_1" not in text, text
    assert "conversation_id" not in text and "['" not in text, text
    assert BASE64_RUN.search(text) is None, text


def test_mentioning_the_bot_in_support_gets_its_answer_in_the_thread(
    page: Any, llm: OpenAIEmulator
) -> None:
    """A mention typed in #support is answered in the thread, live, without a reload."""
    question = unique_question("How do I reset my VPN token?")
    script_answer(llm, question, "Open the VPN page and choose Reset token.")
    open_channel(page, SUPPORT)

    write(page, f"@chatops {question}")

    expect(channel_message(page, question)).to_contain_text("@chatops")
    thread = open_thread_of(page, question)
    expect(thread).to_contain_text("choose Reset token", timeout=AGENT_WORK)


def test_an_answer_is_rated_with_slacks_feedback_buttons(page: Any, llm: OpenAIEmulator) -> None:
    """An answer shows Slack's native 👍 / 👎 under it; a click on 👍 is thanked, privately."""
    # A question the sample knowledge answers: an answer no source supports can be taken
    # out by Verify, and then there is no answer to rate.
    question = unique_question("How do I reset my VPN token?")
    script_answer(llm, question, "Open the VPN page and choose Reset token.")
    open_channel(page, SUPPORT)
    write(page, f"@chatops {question}")
    thread = open_thread_of(page, question)
    answer = thread.locator(".message", has_text="choose Reset token")
    expect(answer.locator(".feedback-button")).to_have_text(["👍", "👎"], timeout=AGENT_WORK)
    expect(answer.locator(".block-button", has_text="Ask a human")).to_have_count(1)

    answer.locator(".feedback-button", has_text="👍").click()

    # In the thread, beside the answer, where it was clicked.
    thanks = thread.locator(".message.ephemeral", has_text="Your 👍 is noted")
    expect(thanks.first).to_be_visible(timeout=AGENT_WORK)


def test_an_email_approved_with_a_check_mark_arrives_in_the_outbox(
    page: Any, llm: OpenAIEmulator
) -> None:
    """The email the bot wants to send waits in #approvals as the email it will be, the
    address masked everywhere; a ✅ from someone who may not approve is shown as not
    counted; the approver's ✅ sends it, the card says who approved it and what happened,
    its controls go, and it appears in the mailbox's outbox."""
    marker = ask_for_an_email(page, llm)
    requester_thread = open_thread_of(page, marker)
    expect(requester_thread).to_contain_text("Waiting for approval", timeout=AGENT_WORK)
    expect(requester_thread).to_contain_text(MASKED)
    assert_reads_as_people_read(requester_thread.inner_text())

    card = approval_card(page, marker)
    for shown in ("From:", f"To: {MASKED}", f"Subject: Renewal {marker}", f"Hi Alice! {marker}"):
        expect(card).to_contain_text(shown)
    assert_reads_as_people_read(card.inner_text())
    expect(card.locator(".reaction[data-name=white_check_mark] .count")).to_have_text("1")
    card.locator(".reaction[data-name=white_check_mark]").click()  # as the requester
    expect(card).to_contain_text("Not counted", timeout=AGENT_WORK)

    act_as(page, APPROVER)
    page.click("#mailbox-link")
    expect(page.locator("#outbox")).not_to_contain_text(marker)
    open_channel(page, APPROVALS)
    card.locator(".reaction[data-name=white_check_mark]").click()

    expect(card).to_contain_text("Approved and done", timeout=AGENT_WORK)
    expect(card).to_contain_text("the email was sent")
    expect(card).not_to_contain_text("Not counted")
    expect(card.locator(".block-button")).to_have_count(0)
    # The bot's own ✅ ✏️ ❌ are gone: the ✅ left are the two people's.
    expect(card.locator(".reaction")).to_have_count(1)
    expect(card.locator(".reaction[data-name=white_check_mark] .count")).to_have_text("2")
    # The card's link opens the requester's conversation, here in the sandbox.
    card.locator("a", has_text="conversation").click()
    expect(page.locator("#thread-messages")).to_contain_text(f"about the renewal {marker}")
    page.click("#mailbox-link")
    sent = page.locator("#outbox .mail", has_text=marker)
    expect(sent).to_have_count(1, timeout=AGENT_WORK)
    expect(sent).to_contain_text(CUSTOMER)
    expect(sent).to_contain_text(f"Hi Alice! {marker}")


def test_a_rejected_email_is_not_sent_and_the_requester_hears_why(
    page: Any, llm: OpenAIEmulator
) -> None:
    """Reject on the approval card asks why in a modal (optional); the card then says who
    rejected it and why, without controls, the reason reaches the requester's thread, and
    nothing is sent."""
    marker = ask_for_an_email(page, llm)
    act_as(page, APPROVER)
    card = approval_card(page, marker)

    card.locator(".block-button[data-action-id=review_reject]").click()
    modal = page.locator("#modal")
    expect(modal).to_contain_text("Why?", timeout=AGENT_WORK)
    assert_reads_as_people_read(modal.inner_text())
    modal.locator("textarea").fill("Renewals go out from the account manager.")
    modal.locator("#modal-submit").click()

    expect(card).to_contain_text("Rejected by", timeout=AGENT_WORK)
    expect(card).to_contain_text("Reason: Renewals go out from the account manager.")
    expect(card.locator(".block-button")).to_have_count(0)
    expect(card.locator(".reaction")).to_have_count(0)

    act_as(page, REQUESTER)
    open_channel(page, SUPPORT)
    requester_thread = open_thread_of(page, marker)
    expect(requester_thread).to_contain_text("rejected", timeout=AGENT_WORK)
    expect(requester_thread).to_contain_text("from the account manager", timeout=AGENT_WORK)
    page.click("#mailbox-link")
    expect(page.locator("#outbox")).not_to_contain_text(marker)


def test_agent_status_answers_an_admin_and_a_plain_user_privately(page: Any) -> None:
    """`/agent status` answers whoever runs it, visible only to them."""
    open_channel(page, GENERAL)
    act_as(page, ADMIN)
    write(page, "/agent status")
    admin_view = page.locator("#messages .message.ephemeral", has_text="Pending approvals")
    expect(admin_view).to_have_count(1, timeout=AGENT_WORK)
    expect(admin_view).to_contain_text("Only visible to you")
    expect(admin_view).to_contain_text("Model: gpt-4o-mini")  # the model this sandbox was given

    act_as(page, REQUESTER)
    expect(page.locator("#messages .message.ephemeral")).to_have_count(0)
    write(page, "/agent status")
    expect(
        page.locator("#messages .message.ephemeral", has_text="Pending approvals")
    ).to_have_count(1, timeout=AGENT_WORK)
    write(page, "/agent pause")
    expect(
        page.locator("#messages .message.ephemeral", has_text="Only workspace admins")
    ).to_have_count(1, timeout=AGENT_WORK)


def test_an_approver_edits_an_email_in_the_modal_before_approving_it(
    page: Any, llm: OpenAIEmulator
) -> None:
    """The Edit button opens a modal with the email's text; the saved edit needs a final ✅,
    and the edited text is what the customer gets."""
    marker = ask_for_an_email(page, llm)
    act_as(page, APPROVER)
    card = approval_card(page, marker)

    card.locator(".block-button[data-action-id=review_edit]").click()
    modal = page.locator("#modal")
    expect(modal.locator("textarea")).to_have_value(re.compile(marker), timeout=AGENT_WORK)
    modal.locator("textarea").fill(f"Hello, renewal {marker} is due in May.")
    modal.locator("#modal-submit").click()

    expect(page.locator("#modal-layer")).to_be_hidden()
    expect(card).to_contain_text("needs a final", timeout=AGENT_WORK)
    card.locator(".reaction[data-name=white_check_mark]").click()
    expect(card).to_contain_text("Approved and done", timeout=AGENT_WORK)
    page.click("#mailbox-link")
    expect(page.locator("#outbox .mail", has_text=marker)).to_contain_text(
        f"renewal {marker} is due in May", timeout=AGENT_WORK
    )


def test_an_email_to_the_agent_inbox_is_answered_in_the_outbox_after_approval(
    page: Any, llm: OpenAIEmulator
) -> None:
    """Mail composed in the mailbox reaches the agent over SMTP; its drafted reply waits in
    #approvals and, approved, lands in the outbox as a reply to the customer."""
    marker = new_marker(8)
    script_answer(llm, marker, f"Sorry! Order {marker} ships tomorrow.")
    page.click("#mailbox-link")
    page.fill("#mail-from", f"Alice Example <{CUSTOMER}>")
    page.fill("#mail-subject", f"Where is order {marker}?")
    page.fill("#mail-body", f"Hello, my order {marker} has not arrived yet.")
    page.click("#mail-composer button[type=submit]")
    expect(page.locator("#mail-result")).to_contain_text("250")
    expect(page.locator("#inbound .mail", has_text=marker)).to_have_count(1)

    act_as(page, APPROVER)
    open_channel(page, APPROVALS)
    card = channel_message(page, f"Re: Where is order {marker}?")
    expect(card).to_contain_text("Approval needed", timeout=AGENT_WORK)
    # The email the customer will get: its headers, then a plain-text body with a
    # greeting and a sign-off; no MIME, no ids. The customer's name and address as
    # approvers see them by default: partly masked.
    masked = f"{CUSTOMER[0]}***@{CUSTOMER.split('@')[1]}"
    for shown in (f"To: A. E. <{masked}>", f"Subject: Re: Where is order {marker}?"):
        expect(card).to_contain_text(shown)
    expect(card).to_contain_text("Hello A.,")
    expect(card).not_to_contain_text(CUSTOMER)
    expect(card).to_contain_text("Best regards,")
    assert_reads_as_people_read(card.inner_text())
    card.locator(".reaction[data-name=white_check_mark]").click()
    expect(card).to_contain_text("Approved and done", timeout=AGENT_WORK)

    page.click("#mailbox-link")
    reply = page.locator("#outbox .mail", has_text=f"Re: Where is order {marker}?")
    expect(reply).to_contain_text(f"Order {marker} ships tomorrow", timeout=AGENT_WORK)
    expect(reply).to_contain_text(CUSTOMER)  # sent to the real address, greeting the real name
    expect(reply).to_contain_text("Hello Alice,")


def test_the_side_panel_offers_prompts_shows_thinking_and_answers_under_a_title(
    page: Any, llm: OpenAIEmulator
) -> None:
    """The ✨ chatops button opens Slack's assistant panel: the product's suggested prompts,
    then, for a clicked prompt, "is thinking…" while it works, the answer without any
    @mention, and the question as the thread's title."""
    prompt = "What can you help me with, and what can't you do?"  # the product's first prompt
    llm.script(
        Reply(content={"intent": "answer", "search_queries": [], "tool_calls": []}),
        # Slow enough for a person (and this test) to see the status while it works.
        Reply(content={"answer": "I answer from your knowledge base.", "citations": []}, delay=4),
        match=prompt,
    )
    act_as(page, REQUESTER)
    open_channel(page, SUPPORT)

    page.click("#open-assistant")

    panel = page.locator("#assistant-view")
    expect(panel.locator(".assistant-prompt")).to_have_count(3, timeout=AGENT_WORK)
    expect(panel.locator("#assistant-title")).to_have_text("New chat")
    panel.locator(".assistant-prompt", has_text="What can you do?").click()
    expect(panel.locator("#assistant-status")).to_have_text(
        "chatops is thinking…", timeout=AGENT_WORK
    )
    expect(panel.locator("#assistant-messages")).to_contain_text(
        "I answer from your knowledge base", timeout=AGENT_WORK
    )
    expect(panel.locator("#assistant-title")).to_have_text(prompt)
    expect(panel.locator("#assistant-status")).to_have_text("", timeout=AGENT_WORK)
    expect(panel.locator(".assistant-prompt")).to_have_count(0)


def test_emoji_shortcodes_mrkdwn_and_links_render_as_slack_shows_them(page: Any) -> None:
    """Shortcodes the product uses show as emoji; bold, italics, strike-through, code,
    lists and quotes are formatted; typed addresses and Slack's <url|text> are links."""
    marker = new_marker(8)
    act_as(page, REQUESTER)
    open_channel(page, GENERAL)

    write(
        page,
        f"Release {marker}: *bold* _fine print_ ~old~ `v2` :raising_hand: :double_vertical_bar: "
        "see https://status.example.com/vpn\n- first step\n- second step\n> quoted note",
    )

    shown = channel_message(page, marker).locator(".body")
    expect(shown).to_contain_text("🙋 ⏸️")
    expect(shown).not_to_contain_text(":raising_hand:")
    expect(shown.locator("strong")).to_have_text("bold")
    expect(shown.locator("em")).to_have_text("fine print")
    expect(shown.locator("del")).to_have_text("old")
    expect(shown.locator("code")).to_have_text("v2")
    expect(shown.locator("li")).to_have_text(["first step", "second step"])
    expect(shown.locator("blockquote")).to_have_text("quoted note")
    link = shown.locator("a", has_text="status.example.com")
    expect(link).to_have_attribute("href", "https://status.example.com/vpn")
    # What the product posts: Slack's own link markup, rendered by the same code.
    html = page.evaluate(
        "text => mrkdwn(text)", "Read <https://docs.example.com/a?b=1&amp;c=2|the docs>."
    )
    assert html == (
        'Read <a href="https://docs.example.com/a?b=1&amp;c=2" target="_blank" '
        'rel="noopener">the docs</a>.'
    )
