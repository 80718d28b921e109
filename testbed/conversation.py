"""Acting as a person in the emulated workspace and waiting for the bot, as a user would."""

from __future__ import annotations

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_events import UserPost
from sandbox.slack_workspace import Message
from testbed.markers import new_marker
from testbed.processes import wait_for

REQUESTER = "U0REQUESTER"
GENERAL = "C0GENERAL"
PLAN = {"intent": "answer", "search_queries": [], "tool_calls": []}


def plan_calling(*calls: dict[str, object]) -> dict[str, object]:
    """A Plan turn that answers by calling `calls` (name, arguments, reason each)."""
    return {**PLAN, "tool_calls": list(calls)}


def unique_question(topic: str) -> str:
    """A question carrying a marker, so the LLM emulator's script matches only this test."""
    return f"{topic} [case {new_marker(8)}]"


def script_answer(llm: OpenAIEmulator, question: str, answer: str) -> None:
    llm.script(
        Reply(content=PLAN), Reply(content={"answer": answer, "citations": []}), match=question
    )


def mention(slack: SlackEmulator, text: str, *, thread_ts: str | None = None) -> UserPost:
    return slack.post_as_user(REQUESTER, GENERAL, f"<@{slack.bot_user_id}> {text}", thread_ts)


def bot_replies(slack: SlackEmulator, thread_ts: str, channel: str = GENERAL) -> list[Message]:
    bot_id = slack.workspace.app.bot_id
    return [m for m in slack.thread(channel, thread_ts) if m.bot_id == bot_id]


def wait_for_answer(
    slack: SlackEmulator, thread_ts: str, timeout: float = 30.0, channel: str = GENERAL
) -> Message:
    """The bot's final reply in the thread (not its 'working on it' placeholder, nor an
    answer still streaming in, nor a stopped stream not yet made final: a run always
    finishes a streamed reply by editing it, and between the two the message holds only
    the preview, e.g. "I " of a draft Verify replaced)."""
    # Imported here: the agent (and the screen's presidio) takes seconds to import, which
    # the benchmarks that use this module's other helpers need not pay.
    from bot.agent.run_request import THINKING_TEXT

    def answered() -> Message | None:
        done = [
            m
            for m in bot_replies(slack, thread_ts, channel)
            if m.text != THINKING_TEXT
            and not slack.workspace.is_streaming(m.channel, m.ts)
            and not (slack.workspace.was_streamed(m.channel, m.ts) and m.edited is None)
        ]
        return done[-1] if done else None

    answer: Message = wait_for(answered, timeout=timeout, message="the bot's answer")
    return answer
