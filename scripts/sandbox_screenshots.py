"""Take the README's sandbox screenshots again, from a real run of the walkthrough.

    .venv/bin/python scripts/sandbox_screenshots.py [--out docs/sandbox]

Starts `chatops sandbox --embedded-redis` in a fresh data folder with no model configured
(so it answers with its demo model, and no outside service is needed), drives it in
headless Chromium (Debian's, at /usr/bin/chromium; `sh scripts/ensure_chromium.sh`
installs it) through the README's steps 1-4, and saves mention.png, approval.png,
mailbox.png and panel.png. Everything shown is what the product did: the demo model's
answers are labelled as such.

`--more` also saves what people read around those steps, to look at before a change to
cards lands (the README does not show them): requester-thread.png (the requester's
thread while the email waits), decided.png (the card once approved), reply-card.png (the
card of a reply to mail sent to the agent inbox), rejected.png (that card rejected
with a reason, from Reject's modal) and summary.png (a thread summarised on request).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REQUESTER, APPROVER = "U0REQUESTER", "U0APPROVER"
SUPPORT, APPROVALS = "C0SUPPORT", "C0APPROVALS"
START_TIMEOUT = 180.0  # s: a cold start initialises Postgres and ingests the samples
AGENT_WORK = 60_000  # ms
# Settings that would make the sandbox use outside services instead of embedded ones.
OUTSIDE = ("DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "sandbox")
    parser.add_argument("--more", action="store_true", help="also the cards around the steps")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chatops-screenshots-") as data_dir:
        url, sandbox = _start_sandbox(Path(data_dir))
        try:
            _walk_through(url, args.out, more=args.more)
        finally:
            sandbox.send_signal(signal.SIGTERM)
            sandbox.wait(timeout=60)
    print(f"screenshots written to {args.out}")
    return 0


def _start_sandbox(data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    command = [sys.executable, "-m", "bot.cli", "sandbox", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--embedded-redis"]
    log = (data_dir / "sandbox.log").open("ab")
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while not _knowledge_ready(url, data_dir):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"chatops sandbox did not start; see {data_dir}/sandbox.log")
        time.sleep(1.0)
    return url, process


def _knowledge_ready(url: str, data_dir: Path) -> bool:
    """The product is up and the sample knowledge ingested (step 1 cites it)."""
    try:
        with urllib.request.urlopen(f"{url}/api/state", timeout=2) as response:  # noqa: S310
            ready = json.loads(response.read()).get("ready") is True
    except (OSError, ValueError):
        return False
    # chatops sandbox leaves this marker once its first ingestion finished.
    return ready and (data_dir / "sample-knowledge.ingested").exists()


def _walk_through(url: str, out: Path, *, more: bool = False) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.set_default_timeout(AGENT_WORK)
        # Assertions wait as long as actions: on a busy machine a step takes many seconds.
        expect.set_options(timeout=AGENT_WORK)
        page.goto(url)
        page.wait_for_selector("#status.ready")

        # 1. A question in #support, answered in its thread from the sample knowledge.
        _act_as(page, REQUESTER)
        _open_channel(page, SUPPORT)
        question = "how do I reset my VPN token?"
        _write(page, f"@chatops {question}")
        message = page.locator("#messages .message", has_text=question)
        message.locator(".open-thread").first.click()
        expect(page.locator("#thread-messages")).to_contain_text("Sources")
        page.screenshot(path=str(out / "mention.png"))

        # 2. An email the agent proposes, waiting in #approvals for Avery.
        _write(page, "@chatops please email alice@customer.example about her renewal")
        _act_as(page, APPROVER)
        _open_channel(page, APPROVALS)
        waiting = page.locator("#messages .message", has_text="Approval needed").last
        expect(waiting).to_contain_text("@customer.example")  # partly masked, by policy
        # The card by its message ts: its text changes once it is decided.
        card = page.locator(f"#messages .message[data-ts='{waiting.get_attribute('data-ts')}']")
        page.screenshot(path=str(out / "approval.png"))
        if more:
            _act_as(page, REQUESTER)
            _open_channel(page, SUPPORT)
            asked = page.locator("#messages .message", has_text="about her renewal")
            asked.locator(".open-thread").first.click()
            expect(page.locator("#thread-messages")).to_contain_text("Waiting for approval")
            page.screenshot(path=str(out / "requester-thread.png"))
            page.click("#close-thread")
            _act_as(page, APPROVER)
            _open_channel(page, APPROVALS)

        # 3. Approved with ✅: the email is in the sandbox's outbox.
        card.locator(".reaction[data-name=white_check_mark]").click()
        expect(card).to_contain_text("Approved and done")
        if more:
            page.screenshot(path=str(out / "decided.png"))
        page.click("#mailbox-link")
        expect(page.locator("#outbox .mail")).to_have_count(1)
        page.screenshot(path=str(out / "mailbox.png"))

        # 4. The app's side panel: suggested prompts, then an answer under the thread's title.
        _act_as(page, REQUESTER)
        _open_channel(page, SUPPORT)
        page.click("#open-assistant")
        page.locator(".assistant-prompt", has_text="Find an answer").click()
        panel = page.locator("#assistant-view")
        expect(panel.locator("#assistant-messages")).to_contain_text("Sources")
        expect(panel.locator("#assistant-status")).to_have_text("")
        page.screenshot(path=str(out / "panel.png"))
        if more:
            page.click("#close-assistant")
            _reply_card(page, out)
            _summary(page, out)
        browser.close()


def _summary(page: Any, out: Path) -> None:
    """A thread in #support, then "summarise this thread" in it: summary.png."""
    _act_as(page, REQUESTER)
    _open_channel(page, SUPPORT)
    _write(page, "The Acme order 1042 arrived damaged; we agreed to reship it on Monday.")
    started = page.locator("#messages .message", has_text="arrived damaged").last
    started.locator(".open-thread").first.click()
    for text in (
        "Decision: reship 1042 by express at no cost.",
        "Who tells Acme the new tracking link?",
        "I'll email Acme the tracking link once it ships.",
    ):
        page.fill("#thread-input", text)
        page.press("#thread-input", "Enter")
    page.fill("#thread-input", "@chatops summarise this thread")
    page.press("#thread-input", "Enter")
    expect(page.locator("#thread-messages")).to_contain_text("Summary", ignore_case=True)
    page.wait_for_timeout(1_000)  # the answer is edited in place once it is complete
    page.screenshot(path=str(out / "summary.png"))


def _reply_card(page: Any, out: Path) -> None:
    """Mail to the agent inbox, its reply's card, then that card rejected with a reason."""
    page.click("#mailbox-link")
    page.click("#mail-composer button[type=submit]")  # the form's example email
    expect(page.locator("#mail-result")).to_contain_text("250")
    _act_as(page, APPROVER)
    _open_channel(page, APPROVALS)
    card = page.locator("#messages .message", has_text="Re: Where is my order?").last
    expect(card).to_contain_text("Approval needed")
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(out / "reply-card.png"))
    card.locator(".block-button[data-action-id=review_reject]").click()
    page.locator("#modal textarea").fill("We answer order questions by phone.")
    page.screenshot(path=str(out / "reject-modal.png"))
    page.locator("#modal-submit").click()
    expect(card).to_contain_text("Rejected by")
    page.screenshot(path=str(out / "rejected.png"))


def _act_as(page: Any, user_id: str) -> None:
    page.select_option("#person", user_id)


def _open_channel(page: Any, channel_id: str) -> None:
    page.click(f"a.channel-link[data-channel={channel_id}]")


def _write(page: Any, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


if __name__ == "__main__":
    sys.exit(main())
