"""The sandbox's demo model: a few fixed rules behind the OpenAI emulator, not AI.

`chatops sandbox` serves it when no model is configured (unless `--offline`), so a
newcomer can try the whole approval flow without installing a language model. The product reaches it like any provider, through
OPENAI_BASE_URL, and validates what it says like any model's output; nothing in the
product knows it is a demo.

It answers the agent loop's two structured steps, told apart by the JSON schema the
request asks for (`core/schemas.py`):

- Plan: search the knowledge with the question; if the question asks to email an address
  ("email alice@customer.example about her renewal"), call the offered tool that sends
  email, with that recipient, a subject from the topic and a short polite body.
- Draft: quote the sentences of the numbered sources that share the most words with the
  question, each cited as [n]; with no sources, say it could not find it. After an action,
  say it waits for approval.
- ChannelSummary (a catch-up summary, bot/summaries/): sort the numbered messages by
  their words: "agreed", "decided", "let's" make a decision; "I'll", "can you",
  "please", "todo" an action item; else a question mark an open question. Summaries of
  parts are merged by putting their lists together.

Every draft, and every email it writes, says it comes from this demo model. It does not
understand anything: it matches words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.agent.prompts import (
    CONTEXT_PREFIX,
    QUESTION_HEADING,
    TOOL_RESULTS_PREFIX,
    VIEWING_PREFIX,
)
from core.knowledge import AWAITING_APPROVAL
from guardrails.injection import UNTRUSTED_TAG
from rag.citations import NOT_FOUND_ANSWER, parse_sources_block
from sandbox.openai_emulator import EmulatorConfig, OpenAIEmulator
from sandbox.openai_script import Failure, Reply, ScriptedReply

DEMO_MODEL_NAME = "sandbox-demo-model"
LABEL = "the chatops sandbox's demo model (fixed rules, not AI)"

MAX_QUOTES = 2
MAX_QUOTE_CHARS = 300
MAX_QUERY_CHARS = 200
MAX_SUBJECT_CHARS = 80
MAX_RECIPIENTS = 10  # connectors/email/tools.MAX_RECIPIENTS

ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# The product hides addresses from models behind numbered placeholders (guardrails/pii.py).
EMAIL_PLACEHOLDER = re.compile(r"<EMAIL_\d+>")
SEND_WORDS = re.compile(r"\b(e-?mail|mail|write to|send)\b", re.IGNORECASE)
TOPIC = re.compile(r"\b(?:about|regarding|concerning)\s+(.+)", re.IGNORECASE | re.DOTALL)
SLACK_MENTION = re.compile(r"<(?:[@#!]|mailto:|https?:)[^<>]*>")  # <@U1>, <#C1|name>, links
POSSESSIVE = re.compile(r"^(her|his|their|its|my|our)\b", re.IGNORECASE)
# Documents and tool results arrive wrapped in these tags (guardrails/injection.py).
UNTRUSTED_TAGS = re.compile(rf"</?{UNTRUSTED_TAG}\b[^>]*>")
CITATION_MARK = re.compile(r"\[\d{1,3}\]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A line that starts a list item: "- ", "* ", "• " or "1. ".
LIST_ITEM = re.compile(r"^(?:[-*•]|\d{1,2}[.)])\s+")
MARKDOWN_LEAD = re.compile(r"^\s*(?:[-*•>]|\d+[.)])\s*")
WORD = re.compile(r"[a-z0-9]+")
# Words too common to tell which sentence answers a question.
COMMON_WORDS = (
    "a an and are as at be by can do does for from how i if in is it me my of on or our "
    "please that the this to we what when where which who why will with you your"
)
STOPWORDS = frozenset(COMMON_WORDS.split())


def respond(body: Mapping[str, Any]) -> ScriptedReply:
    """The emulator's responder: the demo model's reply to one chat-completions request."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    step = _schema_name(body)
    if step == "Plan":
        return Reply(content=plan(_question(messages), _offered_tools(body)))
    if step == "Draft":
        question, context = _draft_turn(messages)
        return Reply(content=draft(question, _sources(messages), context.get("tool_results")))
    if step == "ChannelSummary":
        return Reply(content=channel_summary("\n".join(_user_texts(messages))))
    return Failure(
        400,
        f"{DEMO_MODEL_NAME} only answers the agent's Plan and Draft steps "
        f"(asked for {step or 'free text'}); configure a real model for the rest",
    )


def plan(question: str, tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A Plan: search with the question, and send an email if the question asks for one."""
    query = _plain(question)[:MAX_QUERY_CHARS].strip()
    calls = []
    request = email_request(question)
    tool = _email_tool(tools)
    if request is not None and tool is not None:
        arguments = _email_arguments(tool, request)
        if arguments is not None:
            calls.append(
                {
                    "name": str(tool["name"]),
                    "arguments": arguments,
                    "reason": f"The requester asked to email {', '.join(request.recipients)}.",
                }
            )
    return {"intent": "answer", "search_queries": [query] if query else [], "tool_calls": calls}


def draft(
    question: str,
    sources: Sequence[Mapping[str, Any]],
    tool_results: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Draft: what happened to the actions, else quotes of the best-matching sources."""
    if tool_results:
        # The person asked for an action, so the reply is about the action. Lines stay short
        # or end as a question: the Verify step wants every statement of fact cited.
        lines = [f"From {LABEL}:", *dict.fromkeys(_tool_line(result) for result in tool_results)]
        return {"answer": "\n".join(lines), "citations": []}
    quotes = best_sentences(question, sources)
    if not quotes:
        return {"answer": f"{NOT_FOUND_ANSWER}\n_(From {LABEL}.)_", "citations": []}
    lines = [f"From {LABEL}, the closest passages in the sources:"]
    lines += [f"> {sentence} [{number}]" for number, sentence in quotes]
    cited = list(dict.fromkeys(str(number) for number, _ in quotes))
    return {"answer": "\n".join(lines), "citations": cited}


SUMMARY_LINE = re.compile(
    r"^\[(?P<n>\d+)\] (?:\s*↳ in the thread above, )?(?P<who>\S+) \([^)]*\)(?: \([^)]*\))?: "
    r"(?P<text>.*)$"
)
DECISION_WORDS = re.compile(
    r"\b(agreed|agree|decided|decision|let's|we will|we'll|approved|going with|settled)\b",
    re.IGNORECASE,
)
ACTION_WORDS = re.compile(
    r"\b(i'll|i will|will do|can you|could you|please|todo|to do|action|assign)\b", re.IGNORECASE
)
MAX_SUMMARY_ITEMS = 5  # per section


def channel_summary(prompt: str) -> dict[str, Any]:
    """A summary of the numbered messages in ``prompt`` by fixed rules (or, for a merge
    turn, the parts' summaries put together)."""
    parts = [json.loads(line) for line in prompt.splitlines() if line.startswith('{"overview"')]
    if parts:
        return {
            "overview": f"From {LABEL}: {len(parts)} parts merged.",
            **{
                key: [item for part in parts for item in part.get(key, [])][:MAX_SUMMARY_ITEMS]
                for key in ("decisions", "open_questions", "action_items")
            },
        }
    found: dict[str, list[dict[str, Any]]] = {
        "decisions": [],
        "open_questions": [],
        "action_items": [],
    }
    people: set[str] = set()
    count = 0
    for line in prompt.splitlines():
        match = SUMMARY_LINE.match(line.strip())
        if match is None:
            continue
        count += 1
        who, text = match.group("who"), _shorten(match.group("text").strip())
        people.add(who)
        item = {"text": f"{who}: {text}", "messages": [int(match.group("n"))]}
        if DECISION_WORDS.search(text):
            found["decisions"].append(item)
        elif ACTION_WORDS.search(text):  # "Can you update the changelog?" is a task
            found["action_items"].append(item)
        elif text.rstrip().endswith("?"):
            found["open_questions"].append(item)
    return {
        "overview": f"From {LABEL}: {_counted(count, 'message')} by "
        f"{_counted(len(people), 'person', 'people')}, sorted by their words.",
        **{key: items[:MAX_SUMMARY_ITEMS] for key, items in found.items()},
    }


@dataclass(frozen=True)
class EmailRequest:
    recipients: list[str]
    subject: str
    body: str


def email_request(question: str) -> EmailRequest | None:
    """The email the question asks for: an address (or its placeholder) and a word such
    as "email", "write to" or "send"; None when it asks for none."""
    # Found anywhere, so Slack's <mailto:a@b.example|a@b.example> links count once too.
    found = EMAIL_PLACEHOLDER.findall(question) + ADDRESS.findall(question)
    recipients = list(dict.fromkeys(found))[:MAX_RECIPIENTS]
    rest = SLACK_MENTION.sub(" ", ADDRESS.sub(" ", EMAIL_PLACEHOLDER.sub(" ", question)))
    if not recipients or not SEND_WORDS.search(rest):
        return None
    topic = _topic(rest)
    subject = (topic[:1].upper() + topic[1:])[:MAX_SUBJECT_CHARS] if topic else "Following up"
    about = f"about {topic}" if topic else "to follow up with you"
    body = (
        f"Hello,\n\nI'm writing to you {about}. Please reply to this email if you have any "
        f"questions.\n\nBest regards\n\n(Drafted by {LABEL}.)"
    )
    return EmailRequest(recipients, subject, body)


def best_sentences(question: str, sources: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """Up to MAX_QUOTES (source number, sentence) pairs sharing the most words with the
    question; the first source's first sentence when none shares any (retrieval ranked it
    first). Empty only without sources."""
    wanted = _terms(question)
    scored: list[tuple[int, int, int, str]] = []
    for source in sources:
        number = source.get("number")
        if not isinstance(number, int):
            continue
        for position, sentence in enumerate(_sentences(str(source.get("text", "")))):
            scored.append((len(wanted & _terms(sentence)), number, position, sentence))
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    matching = [(number, sentence) for score, number, _, sentence in scored if score > 0]
    if not matching and scored:
        _, number, _, sentence = min(scored, key=lambda item: (item[1], item[2]))
        return [(number, sentence)]
    return matching[:MAX_QUOTES]


def demo_model_server(api_key: str) -> OpenAIEmulator:
    """The demo model as an OpenAI-compatible endpoint on 127.0.0.1 (not yet started),
    answering only requests that carry `api_key`."""
    config = EmulatorConfig(api_key=api_key, models=(DEMO_MODEL_NAME,))
    return OpenAIEmulator(config, responder=respond)


def _schema_name(body: Mapping[str, Any]) -> str | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping):
        return None
    schema = response_format.get("json_schema")
    name = schema.get("name") if isinstance(schema, Mapping) else None
    return name if isinstance(name, str) else None


def _user_texts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        str(m["content"])
        for m in messages
        if m.get("role") == "user" and isinstance(m.get("content"), str)
    ]


def _question(messages: Sequence[Mapping[str, Any]]) -> str:
    """The person's latest message: the last user turn that is not our tool results,
    without the note of which channel they are viewing (bot/agent/prompts.py)."""
    for text in reversed(_user_texts(messages)):
        if text.startswith(TOOL_RESULTS_PREFIX):
            continue
        parts = [p for p in text.split("\n\n") if not p.startswith(VIEWING_PREFIX)]
        return "\n\n".join(parts)
    return ""


def _draft_turn(messages: Sequence[Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]]:
    """The Draft step's question and context, from the last user turn that gives a context:
    the question under its heading, then the context line, then the sources."""
    marker = f"\n\n{CONTEXT_PREFIX}"
    for text in reversed(_user_texts(messages)):
        at = text.rfind(marker)
        if at < 0:
            continue
        question = text[:at].split(QUESTION_HEADING)[-1].strip()
        context_line = text[at + len(marker) :].split("\n", 1)[0]
        try:
            context = json.loads(context_line)
        except ValueError:
            context = {}
        return question, context if isinstance(context, Mapping) else {}
    return _question(messages), {}


def _offered_tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The offered tools as the Plan's response format lists them: one tool-call shape per
    tool, its name an enum of one and its arguments the tool's schema."""
    response_format = body.get("response_format")
    schema = response_format.get("json_schema") if isinstance(response_format, Mapping) else None
    plan = schema.get("schema") if isinstance(schema, Mapping) else None
    calls = _get(plan, "properties", "tool_calls", "items")
    shapes = calls.get("anyOf", [calls]) if isinstance(calls, Mapping) else []
    tools: list[Mapping[str, Any]] = []
    for shape in shapes:
        names = _get(shape, "properties", "name", "enum")
        if isinstance(names, list) and len(names) == 1:
            tools.append({"name": names[0], "arguments": _get(shape, "properties", "arguments")})
    return tools


def _get(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _sources(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The numbered sources of the Draft step (rag/citations.py `sources_block`), in
    whichever message carries them."""
    for message in messages:
        content = message.get("content")
        found = parse_sources_block(content) if isinstance(content, str) else []
        if found:
            return [{"number": n, "title": title, "text": text} for n, title, text in found]
    return []


def _email_tool(tools: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The offered tool that sends a new email: its arguments take recipients in `to`
    and a `subject`. Found by its schema, so a renamed tool is still found."""
    for tool in tools:
        properties = _properties(tool)
        if properties.get("to", {}).get("type") == "array" and "subject" in properties:
            return tool
    return None


def _properties(tool: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    arguments = tool.get("arguments")
    properties = arguments.get("properties") if isinstance(arguments, Mapping) else None
    if not isinstance(properties, Mapping):
        return {}
    return {str(k): dict(v) for k, v in properties.items() if isinstance(v, Mapping)}


def _email_arguments(tool: Mapping[str, Any], request: EmailRequest) -> dict[str, Any] | None:
    """The arguments per the tool's schema; None if it requires something we can't fill."""
    properties = _properties(tool)
    arguments_schema = tool.get("arguments")
    required = arguments_schema.get("required", []) if isinstance(arguments_schema, Mapping) else []
    arguments: dict[str, Any] = {"to": request.recipients, "subject": request.subject}
    body_given = False
    for name in required:
        if name in arguments:
            continue
        if _nullable(properties.get(name, {})):
            arguments[name] = None  # optional: strict schemas list it, null leaves it out
            continue
        if properties.get(name, {}).get("type") != "string" or body_given:
            return None  # only one free-text field can be the body; don't invent the rest
        arguments[name], body_given = request.body, True
    return arguments


def _nullable(schema: Mapping[str, Any]) -> bool:
    options = schema.get("anyOf")
    return isinstance(options, list) and {"type": "null"} in options


def _tool_line(result: Mapping[str, Any]) -> str:
    """A short line on one action, in people's words, never the tool's name (the product
    takes a sentence naming one out); the thread lists each action under the reply."""
    output = " ".join(UNTRUSTED_TAGS.sub(" ", str(result.get("output", ""))).split())
    if result.get("ok") and output.startswith(AWAITING_APPROVAL):
        return "Your request waits for approval"
    if result.get("ok"):
        return "Your request is done"
    return f"An action was not proposed: {output.rstrip('.')}. Could you check the request?"


def _topic(text: str) -> str:
    match = TOPIC.search(text)
    if match is None:
        return ""
    topic = re.split(r"[.!?\n]", match.group(1))[0]
    topic = re.sub(r"[,;:]?\s*(please|thanks|thank you)\W*$", "", topic.strip(), flags=re.I)
    return POSSESSIVE.sub("your", topic.strip(" ,;:"))


def _plain(question: str) -> str:
    return " ".join(SLACK_MENTION.sub(" ", question).split())


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2}


def _stem(word: str) -> str:
    # Crude on purpose: "tokens" matches "token", "resetting" does not match "reset".
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def _sentences(text: str) -> list[str]:
    sentences = []
    for paragraph in _paragraphs(UNTRUSTED_TAGS.sub("\n", text)):
        for piece in SENTENCE_END.split(paragraph):
            sentence = CITATION_MARK.sub("", MARKDOWN_LEAD.sub("", piece)).strip()
            if len(sentence.split()) >= 3:
                sentences.append(_shorten(sentence))
    return sentences


def _counted(count: int, one: str, many: str | None = None) -> str:
    """ "1 message", "4 messages", "1 person", "2 people"."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _paragraphs(text: str) -> list[str]:
    """The text's paragraphs and list items, each on one line: documents wrap sentences
    over several lines, and a line is not a sentence. Headings name a topic and answer
    nothing, so they are left out."""
    paragraphs: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if block and (not stripped or stripped.startswith("#") or LIST_ITEM.match(stripped)):
            paragraphs.append(" ".join(block))
            block = []
        if stripped and not stripped.startswith("#"):
            block.append(stripped)
    if block:
        paragraphs.append(" ".join(block))
    return paragraphs


def _shorten(sentence: str) -> str:
    if len(sentence) <= MAX_QUOTE_CHARS:
        return sentence
    return sentence[: MAX_QUOTE_CHARS - 1].rsplit(" ", 1)[0] + "…"
