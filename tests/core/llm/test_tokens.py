"""Counting a prompt's tokens with the server's own tokenizer (llama-server's POST
/tokenize) where it has one, remembered per server, and a safe estimate elsewhere.
Against the OpenAI emulator over HTTP."""

from __future__ import annotations

from structlog.testing import capture_logs

from core.llm.tokens import MESSAGE_OVERHEAD_TOKENS, TokenCounter, estimate_text
from sandbox.openai_emulator import TOKENIZE_PATH, OpenAIEmulator, emulated_tokens

MESSAGES = [
    {"role": "system", "content": "You answer questions about the refund policy."},
    {"role": "user", "content": "How long do customers have to return hardware?"},
]


def tokenized(messages: list[dict[str, str]]) -> int:
    return sum(len(emulated_tokens(m["content"])) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def test_a_server_with_tokenize_counts_the_prompt(llm: OpenAIEmulator) -> None:
    """Each message is counted by the server's tokenizer, once per text."""
    llm.serve_tokenize()
    counter = TokenCounter()

    first = counter.count_messages(MESSAGES, base_url=llm.base_url)
    again = counter.count_messages(MESSAGES, base_url=llm.base_url)

    assert first.method == "tokenizer" and first.tokens == tokenized(MESSAGES)
    assert again == first
    assert len(llm.requests(path=TOKENIZE_PATH)) == len(MESSAGES)


def test_a_server_without_tokenize_is_asked_once_then_estimated(llm: OpenAIEmulator) -> None:
    """A 404 is remembered for that server: later prompts are estimated (over-counted)
    without asking it again, even if it would answer now."""
    counter = TokenCounter()

    first = counter.count_messages(MESSAGES, base_url=llm.base_url)
    llm.serve_tokenize()
    later = counter.count_messages(
        [*MESSAGES, {"role": "user", "content": "And software?"}], base_url=llm.base_url
    )

    assert first.method == "estimate" and later.method == "estimate"
    assert first.tokens == sum(
        estimate_text(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in MESSAGES
    )
    assert first.tokens > tokenized(MESSAGES)  # the estimate errs on the large side
    assert len(llm.requests(path=TOKENIZE_PATH)) == 1


def test_a_cloud_api_is_never_asked(llm: OpenAIEmulator) -> None:
    """A provider that is not on this machine or its network is estimated without a
    request (cloud APIs have no /tokenize), while a local one is asked."""
    with capture_logs() as logs:
        cloud = TokenCounter().count_messages(MESSAGES, base_url="https://api.example.com/v1")
        TokenCounter().count_messages(MESSAGES, base_url=llm.base_url)
    assert cloud.method == "estimate"
    asked = [entry for entry in logs if entry["event"] == "llm.tokenizer"]
    assert [entry["server"] for entry in asked] == [llm.base_url.split("//")[1].split("/")[0]]
