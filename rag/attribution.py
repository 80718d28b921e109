"""Which sources support each sentence of a draft: the Verify step's grounding check.

Small models write correct answers without putting [n] after every line, or with the wrong
numbers. Rejecting those drafts threw good answers away, so Verify judges meaning rather
than bracket discipline: each sentence of the draft is compared with the sources it could
come from, by word overlap and, when that is not enough and an embedder is given, by
embedding similarity (the worker already has one loaded for retrieval). Markers are then
added or repaired from what actually supports each sentence; markers the model got right
are kept as written, and citations in other forms ("[Source 1]") become markers first.

Grounding stays strict about facts. A sentence nothing supports is dropped (or flagged,
per setting), and a number or a name that appears in no source makes a sentence
unsupported however similar the rest of it is: "within 90 days" is not supported by
"within 45 days" though an embedder rates them alike. A number the person gave in the
question may be applied ("at 14 months it is out of warranty"); a name they gave may not
be pinned on a source that never mentions it. A draft whose every factual sentence is
unsupported is no answer at all (the caller answers "not found").

Greetings, headings, lead-ins ("Here is how:"), questions back to the person, courtesy
lines, refusals, lead-ins that only restate the question and (in a run that called tools)
reports on its own actions state no fact about the company and are kept unattributed.
Facts may also come from tool results (a contact the model looked up) or earlier turns of
the conversation: those support a sentence but have no number to cite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

    from rag.embeddings import Embedder

Unsupported = Literal["drop", "flag"]
Kind = Literal["fact", "chatter", "not_found"]

MARKER = re.compile(r"\[(\d{1,3})\]")
# Other ways models cite: "[Source 1]", "(source: 2)", "[1, 3]", "【1】", "[^1]".
OTHER_MARKERS = re.compile(
    r"[\[(【]\s*(?:\^|(?:sources?|src|doc(?:ument)?s?|ref(?:erence)?s?)\s*:?\s*#?)?"
    r"(\d{1,3}(?:\s*(?:,|and|&)\s*\d{1,3})*)\s*[\])】]",
    re.IGNORECASE,
)
MARKERS_AT_START = re.compile(r"^(?:\s*\[\d{1,3}\])+\s*")
# A list item's or quote's leading marker, kept as it is when the line is rebuilt.
LINE_PREFIX = re.compile(r"^\s*(?:(?:[-*•>]|\d{1,2}[.)])\s+)*")
# Sentence ends: after . ! ? (and any closing quote or mrkdwn), before the next word.
SENTENCE_END = re.compile(
    r"(?<=[.!?])(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)[*_)\"'\u201d\u2019]*\s+(?=\S)"
)
TERMINAL = re.compile(r"([.!?…]+[*_)\"'\u201d\u2019]*)$")
# Text that is not words of the sentence: Slack mentions and links, placeholders for
# hidden personal data (guardrails/pii.py), URLs, inline code, mrkdwn emphasis.
SLACK_MARKUP = re.compile(r"<[@#!][^<>]*>|<(?:https?|mailto):[^<>]*>")
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
URL = re.compile(r"https?://\S+")
EMPHASIS = re.compile(r"[*_~`]")
WORD = re.compile(r"[a-z0-9][a-z0-9'\u2019-]*")
# A number starts a word: the 3 inside a ticket id or tag (a3f9c2) is not a figure the
# person gave, and counting it would let an invented "3 days" through.
NUMBER = re.compile(r"(?<![A-Za-z0-9])\d+(?:[.,:]\d+)*")
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
# Numbering that is not a fact: "Step 2:", "2." or "2)" before a sentence.
STEP_LABEL = re.compile(r"^(?:step\s+\d{1,2}\s*[:.)-]?|\d{1,2}[.)])\s+", re.IGNORECASE)
# "According to the sources, ...", "Based on the provided information, ...": words about
# where a fact is from, which would only lower its overlap with the source it is from.
SOURCE_LEAD = re.compile(
    r"^(?:according\s+to|based\s+on|as\s+(?:stated|mentioned|described|explained|noted)"
    r"\s+in|per)\s+(?:(?:the|these|this)\s+)?(?:(?:provided|given|above|available)\s+)?"
    r"(?:(?:sources?|documents?|documentation|information|context|knowledge\s*base|passages?"
    r"|text)(?:\s+(?:provided|given|above))?(?:\s+\d{1,3})?)?\s*,?\s*",
    re.IGNORECASE,
)
LIST_NUMBER = re.compile(r"^\d{1,2}[.)]$")
# A capitalised word inside a sentence (not its first word): likely a name of a place,
# product, team or person. Acronyms count too.
NAME = re.compile(r"(?<=[\s(\"'\u201c\u2018/])([A-Z][A-Za-z0-9&'\u2019-]*[A-Za-z0-9])")
FENCE = "```"

COMMON_WORDS = """a about above after again all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves you're you'll
    you've i'm i've we're let us may might must shall please get got go one"""
STOPWORDS = frozenset(COMMON_WORDS.split())
# Words that carry no content of their own in a lead-in ("Here are the steps to ...").
FILLER_WORDS = """follow following steps step below these here how way ways need needs want
    wants asked ask question answer help know like would sure okay ok great good"""
FILLER = frozenset(FILLER_WORDS.split())
GREETING = re.compile(
    r"^(?:(?:hi|hello|hey|thanks|thank you)(?:\s+[\w@<>-]+){0,2}|sure|of course|certainly"
    r"|absolutely|okay|ok|great|good question|great question|no problem|you're welcome"
    r"|happy to help)\b[\s!,.:-]*$",
    re.IGNORECASE,
)
COURTESY = re.compile(
    r"^(?:(?:please\s+)?let me know\b|(?:i\s+)?hope (?:this|that) helps\b|feel free to\b"
    r"|(?:i'm|i am) happy to help\b|if you (?:have|need) (?:any )?(?:other|more|further)\b"
    r"|is there anything else\b|anything else\b)",
    re.IGNORECASE,
)
LEAD_IN = re.compile(
    r"^(?:to\b|here(?:'s| is| are)\b|you asked\b|you(?:'d| would) like\b|you want\b"
    r"|you're asking\b|regarding\b|as for\b|about\b|sure\b|okay\b|ok\b)",
    re.IGNORECASE,
)
# The assistant declining or saying what it cannot do: not a fact about the company.
DECLINE = re.compile(
    r"^(?:(?:sorry|unfortunately)[,!.]?\s+)?(?:but\s+)?i(?:'m| am)?\s+(?:can't|cannot|can not"
    r"|won't|will not|am not able|not able|unable|not allowed|am not allowed|shouldn't"
    r"|should not|don't have access|do not have access|must decline|have to decline)\b",
    re.IGNORECASE,
)
# A reply's report on the actions it proposed (only when the run called tools).
ACTION_REPORT = re.compile(
    r"\b(?:approv\w*|pending|awaiting|waiting for|action\s+\d+|i(?:'ve| have)?\s+(?:drafted"
    r"|prepared|proposed|queued|requested|created|scheduled|sent|posted|added|updated|booked"
    r"|looked up|found|checked|searched))\b",
    re.IGNORECASE,
)
# A sentence that says an action has been done ("The ticket is marked as solved", "I've
# sent the email"): false while the run's actions wait for approval.
DONE_CLAIM = re.compile(
    r"\b(?:(?:has|have|had)\s+been|was|were|(?:is|are)(?:\s+now)?|i(?:'ve|\s+have)?"
    r"|we(?:'ve|\s+have)?)\s+(?:already\s+|now\s+|successfully\s+)?(?:sent|emailed|mailed"
    r"|posted|replied|informed|notified|told|scheduled|booked|invited|created|added|logged"
    r"|noted|updated|moved|changed|marked|solved|closed|resolved|completed|done)\b",
    re.IGNORECASE,
)
# ...unless it also says the action waits, or when it will happen.
AWAITED = re.compile(
    r"\b(?:approv\w*|pending|waiting|awaiting|once|until|after|when|if)\b", re.IGNORECASE
)
NOT_DONE_REASON = (
    "says an action is done that has not happened (it waits for approval, or was not made)"
)
INTERNAL_NAME_REASON = "names one of the agent's tools, which people do not know by name"
ECHO_REASON = "repeats the person's message instead of answering it"
# A sentence this long (in words) that the message holds whole, or that holds the whole
# message, repeats it: "The message to reply to is: Log on Hank's record (contact 101)
# that he wants 50 seats, and email him a quote", the 1.5B model's whole reply.
ECHO_WORDS = 6
INSTRUCTIONS_REASON = "repeats the assistant's own instructions instead of answering"
# A sentence of at least ECHO_WORDS words, this share of whose runs of four words are in
# the agent template's instructions, repeats them ("Before inviting anyone to a meeting,
# check their free/busy for that time", for "Before you invite anyone ...").
INSTRUCTION_RUNS = 0.6
_NOT = r"(?:n[o']?t|not)"
CONTRAST = re.compile(r"\b(?:but|however|although|though|yet|instead)\b")
# What a not-found statement is about: the sources, in the words models use for them.
_SOURCES = (
    r"(?:(?:provided|given|available|above|these|those|any|my|our|the|company's|company)\s+)*"
    r"(?:sources?"
    r"|knowledge\s*base|documents?|documentation|context|passages?|information|text|data)"
    r"(?:\s+(?:provided|given|available|above))?"
)
NOT_FOUND_STATEMENTS = tuple(
    re.compile(pattern)
    for pattern in (
        # "I couldn't find this in the knowledge base", "we were unable to locate ..."
        rf"\b(?:i|we)(?:'m| am| are| was| were)?\s+(?:(?:could|can|did|do|was|were|am|are)\s*{_NOT}"
        r"(?:\s+able\s+to)?|unable\s+to|not\s+able\s+to|failed\s+to)\s+(?:find|locate|see"
        r"|identify|get)\b",
        # "The sources don't mention ...", "the provided information does not include ..."
        rf"\b{_SOURCES}\s+(?:do|does|did)\s*{_NOT}\s+(?:contain|mention|say|cover|answer"
        r"|include|have|provide|describe|explain|specify|address|discuss|state|list|give)",
        # "There is no information about this in the sources."
        r"\b(?:there\s+(?:is|are|was)\s+)?no\s+(?:relevant\s+|specific\s+|such\s+)?(?:information"
        rf"|mention|details?|answer|data)\b.{{0,60}}\b(?:in|from|within)\s+(?:the\s+)?{_SOURCES}",
        # "I don't have information on that", "I don't know".
        rf"^(?:sorry,?\s+|unfortunately,?\s+)?(?:i|we)\s+(?:do|did)\s*{_NOT}\s+(?:have\s+"
        r"(?:any\s+)?(?:information|details|an\s+answer)|know)\b",
        # "The wifi password is not provided in the given information."
        r"\b(?:is|are|was|were)\s+not\s+(?:mentioned|covered|found|available|included|provided"
        r"|specified|listed|given|stated|present|contained|described)\s+(?:anywhere\s+)?"
        rf"(?:in|within|by)\s+(?:the\s+)?{_SOURCES}",
        r"\bnot\s+(?:mentioned|covered|found|available|included)\s+in\s+(?:the|my|our)\s+"
        r"(?:sources?|knowledge\s*base|documents?|documentation|context)",
    )
)

# Support thresholds, calibrated on all-MiniLM-L6-v2 (rag/embeddings.py): paraphrases of a
# passage's sentence score 0.6-0.97, related but different facts 0.3-0.55. Word overlap
# is the share of the sentence's content words found in the source.
WORDS_ALONE = 0.6
MEANING_ALONE = 0.75
WORDS_WITH_MEANING = (0.34, 0.55)
# A marker the model wrote is kept on weaker evidence: it did see that source.
# (half the words alone, or a quarter with related meaning; generic words such as
# "within ... days" make a third on their own).
WORDS_FOR_OWN_MARKER = 0.5
WORDS_AND_MEANING_FOR_OWN_MARKER = (0.25, 0.5)
# An unknown name is forgiven only when nearly every other word is in the source.
WORDS_DESPITE_NAME = 0.75
# A sentence that repeats the question's words, several of which no source has ("No, we
# do not offer a free trial" where no source mentions a trial), speaks of what the sources
# do not cover, however much of the rest ("Widget Cloud") they share. One missing word is
# forgiven: answers paraphrase ("customers can return" for "hardware can be returned").
TOPIC_WORDS_MISSING = (2, 0.4)  # at least this many, and this share of the question's words
# ... unless a source's sentence means the same as it (cosine, with the worker's embedder).
SAME_MEANING = 0.85
# An opening condition ("If you left your laptop on the train, ...") is the person's own
# situation when most of its words are the question's; what follows is the claim.
PREMISE = re.compile(r"^(?:if|when|since|because)\s+([^,;:]+)[,;:]\s*", re.IGNORECASE)
PREMISE_FROM_QUESTION = 0.6
# Words of a question that name no topic: who, and doing in general. "Up to 10% without
# asking anyone" answers "how much discount can I give without asking anyone?" from "may
# give up to 10% off ... anything above that needs the director's approval", though no
# source says "anyone", "ask" or "without".
NO_TOPIC_WORDS = """anyone anybody someone somebody everyone everybody anything something
    nothing without ask asks asking asked buy buys buying bought give gives giving gave
    allowed allow able use uses using used make makes making"""
NO_TOPIC = frozenset(NO_TOPIC_WORDS.split())
MAX_MARKERS = 2
# A figure stands beside what it is about: the source line that shares the most words
# (at least this many) with the figure's clause must hold it ("meals" beside 40 GBP).
FIGURE_NEIGHBOURS = 2
# Where a source's text starts a new block: a blank line, a list item or a heading.
BLOCK_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*\u2022]|\d+[.)]\s|#))")
HEADING_LINE = re.compile(r"^(\s*#.*)$", re.MULTILINE)  # and a heading ends its block
# A source line that goes on from the one before: a title line ("VPN access > Locked
# accounts") is followed by a capitalised sentence, a wrapped one by a word or a figure.
WRAPPED_ON = re.compile(r"[a-z0-9(]")
CLAUSE_BREAK = re.compile(r"[,;:()]|\b(?:and|but|while|whereas)\b", re.IGNORECASE)
REPEAT_WORDS = 4  # a sentence this long written again word for word is dropped
MAX_EVIDENCE_PIECES = 240  # bounds the embedding work on very long tool results

FLAG_NOTE = "_(not found in the sources)_"


@dataclass(frozen=True)
class Evidence:
    """Text a sentence may be grounded in: a numbered source, or a tool result (no number)."""

    text: str
    number: int | None = None


@dataclass(frozen=True)
class Grounding:
    """How Verify grounds drafts: the embedder (None: word overlap alone) and what
    happens to a sentence nothing supports."""

    embedder: Embedder | None = None
    unsupported: Unsupported = "drop"


@dataclass(frozen=True)
class SentenceVerdict:
    text: str  # as the model wrote it
    kind: Kind
    sources: tuple[int, ...] = ()  # the numbered sources supporting it
    supported: bool = False  # by a source or a tool result (facts only)
    reason: str = ""  # why an unsupported fact is unsupported, for the step log
    # Unsupported because it speaks of words of the question no source has.
    off_topic: bool = False


@dataclass(frozen=True)
class Attribution:
    answer: str  # the draft with markers added or repaired and unsupported sentences handled
    sentences: list[SentenceVerdict] = field(default_factory=list)

    @property
    def facts(self) -> list[SentenceVerdict]:
        return [s for s in self.sentences if s.kind == "fact"]

    @property
    def unsupported(self) -> list[SentenceVerdict]:
        return [s for s in self.facts if not s.supported]

    @property
    def cited(self) -> list[int]:
        return sorted({n for s in self.sentences for n in s.sources})

    @property
    def says_not_found(self) -> bool:
        return any(s.kind == "not_found" for s in self.sentences)

    @property
    def answers_nothing(self) -> bool:
        """Nothing in the draft is a supported fact, yet it tried to state some or said
        it found nothing; or it opens by saying it found nothing; or its first fact, the
        direct answer, is about what no source mentions, so what the sources do support
        answers another question ("Our parental leave policy is that everyone gets 25
        days of holiday"): the caller answers "not found"."""
        supported = [s for s in self.facts if s.supported]
        if self.facts and self.facts[0].off_topic:
            return True
        # ...or it opens by saying it found nothing: what follows is about something else.
        # Asked for the Leeds warehouse's Wi-Fi password, the 1.5B model wrote that it is
        # "not provided in the company's knowledge base", then quoted the password policy.
        said = [s for s in self.sentences if s.kind != "chatter"]
        if said and said[0].kind == "not_found":
            return True
        return not supported and (bool(self.facts) or self.says_not_found)


def canonical_markers(text: str) -> str:
    """Citations written another way ("[Source 1]", "(source: 2)", "[1, 3]") as [n]
    markers. Bare "(2)" stays: it is as often a list number or a count."""

    def rewrite(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole.startswith("(") and not re.search(r"[a-z^]", whole, re.IGNORECASE):
            return whole
        return "".join(f"[{n}]" for n in re.findall(r"\d{1,3}", match.group(1)))

    return OTHER_MARKERS.sub(rewrite, text)


def states_not_found(sentence: str) -> bool:
    """Whether a sentence says the answer was not found, in any of the usual phrasings,
    and nothing else ("I couldn't find the form, but ..." goes on to state a fact)."""
    text = _normalise(sentence)
    if CONTRAST.search(text):
        return False
    return any(pattern.search(text) for pattern in NOT_FOUND_STATEMENTS)


def is_not_found(answer: str) -> bool:
    """A reply that says it found nothing and states no fact: every sentence is a
    not-found statement or chatter (a greeting, a courtesy, a question back)."""
    kinds = [
        _kind(part, "", listed=bool(line.prefix.strip()))
        for line in _parse(answer)
        if not line.code
        for part in line.parts
    ]
    return "not_found" in kinds and "fact" not in kinds


def attribute(
    answer: str,
    evidence: Sequence[Evidence],
    *,
    question: str = "",
    embedder: Embedder | None = None,
    unsupported: Unsupported = "drop",
    strict: bool = True,
    acted: bool = False,
    awaiting: bool = False,
    internal_names: Sequence[str] = (),
    instructions: str = "",
) -> Attribution:
    """The draft `answer` with each factual sentence attributed to the evidence that
    supports it; see the module's docstring.

    Not `strict` (nothing was retrieved, so the reply is not an answer from the knowledge
    base: a greeting, a rewording, a summary of the thread), only sentences that claim a
    source with a marker must be supported; the others stand as written. `acted`: the run
    called tools, so sentences reporting what happened to its actions ("it is waiting for
    approval") are about the run, not facts to find in the sources. `awaiting`: some of
    those actions wait for approval, so a sentence saying one is done is false and goes.
    `internal_names`: the agent's tool names; a sentence naming one goes (the model told
    a person to "call the `hubspot_add_contact_note` tool"). `instructions`: the agent
    template's; a sentence repeating them goes."""
    naming = _naming(internal_names)
    instruction_runs = _runs(instructions)
    lines = _parse(canonical_markers(answer))
    pieces = [(line_no, i) for line_no, line in enumerate(lines) for i in range(len(line.parts))]
    verdicts: dict[tuple[int, int], SentenceVerdict] = {}
    facts: list[tuple[int, int]] = []
    for key in pieces:
        line_no, i = key
        line = lines[line_no]
        sentence = line.parts[i]
        listed = bool(line.prefix.strip())
        kind: Kind = "chatter" if line.code else _kind(sentence, question, acted, listed)
        if naming is not None and naming.search(sentence):
            verdicts[key] = SentenceVerdict(sentence, "fact", reason=INTERNAL_NAME_REASON)
        elif not line.code and echoes(sentence, question):
            verdicts[key] = SentenceVerdict(sentence, "fact", reason=ECHO_REASON)
        elif not line.code and repeats(sentence, instruction_runs):
            verdicts[key] = SentenceVerdict(sentence, "fact", reason=INSTRUCTIONS_REASON)
        elif awaiting and not line.code and claims_done(sentence, question):
            verdicts[key] = SentenceVerdict(sentence, "fact", reason=NOT_DONE_REASON)
        elif kind == "fact" and not strict and not MARKER.search(sentence):
            verdicts[key] = SentenceVerdict(sentence, kind, supported=True)
        elif kind == "fact":
            facts.append(key)
        else:
            verdicts[key] = SentenceVerdict(sentence, kind)
    if facts:
        plain = [_plain(lines[k[0]].parts[k[1]]) for k in facts]
        scorer = _Scorer(evidence, plain, embedder, question)
        for index, key in enumerate(facts):
            sentence = lines[key[0]].parts[key[1]]
            verdicts[key] = scorer.verdict(index, sentence)
    return Attribution(_rebuild(lines, verdicts, unsupported), [verdicts[k] for k in pieces])


def _naming(names: Sequence[str]) -> re.Pattern[str] | None:
    """What finds any of `names` as a whole identifier (not inside a longer one). Only
    names no prose uses (with an underscore: `send_email`, `orders__lookup`): a tool
    called "search" must not take every sentence that says "search"."""
    identifiers = [name for name in names if "_" in name]
    if not identifiers:
        return None
    alternatives = "|".join(sorted(map(re.escape, identifiers), key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def echoes(sentence: str, question: str) -> bool:
    """Whether ``sentence`` repeats the person's message: one of them holds the other
    whole, word for word, and the shorter is at least ECHO_WORDS words long. An answer
    that takes up the question's words ("Yes, you can book first class for a two-hour
    journey") does not: it holds the question's words, not the question."""
    said = f" {' '.join(WORD.findall(_normalise(sentence)))} "
    asked = f" {' '.join(WORD.findall(_normalise(question)))} "
    if said in asked:
        shorter = said
    elif asked in said:
        shorter = asked
    else:
        return False
    return len(shorter.split()) >= ECHO_WORDS


def repeats(sentence: str, instruction_runs: set[tuple[str, ...]]) -> bool:
    """Whether ``sentence`` repeats the instructions whose runs of four words are
    ``instruction_runs``. The 1.5B model, asked to log a note and email a quote, wrote
    the sales template's rules into the reply: "The outreach email is short, specific to
    the person's company and deal, and never promises prices or discounts ..."."""
    runs = _runs(sentence)
    if not instruction_runs or len(runs) < ECHO_WORDS - 3:
        return False
    return len(runs & instruction_runs) >= INSTRUCTION_RUNS * len(runs)


def _runs(text: str) -> set[tuple[str, ...]]:
    words = [_stem(w) for w in WORD.findall(_normalise(text))]
    return {tuple(words[i : i + 4]) for i in range(len(words) - 3)}


def claims_done(sentence: str, question: str = "") -> bool:
    """Whether `sentence` says an action has happened, without saying it waits. What the
    person said happened ("their refund was sent today") is theirs to say."""
    plain = _normalise(sentence)
    asked = _normalise(question)
    return not AWAITED.search(plain) and any(
        claim.group() not in asked for claim in DONE_CLAIM.finditer(plain)
    )


# --- Parsing -------------------------------------------------------------------------------


@dataclass
class _Line:
    prefix: str
    parts: list[str]
    code: bool = False  # inside a code block: shown as written, not attributed
    raw: str = ""


def _parse(answer: str) -> list[_Line]:
    lines: list[_Line] = []
    in_code = False
    for raw in answer.splitlines():
        if raw.strip().startswith(FENCE):
            lines.append(_Line("", [raw] if raw.strip() else [], code=True, raw=raw))
            in_code = not in_code
            continue
        if in_code:
            lines.append(_Line("", [raw], code=True, raw=raw))
            continue
        prefix = LINE_PREFIX.match(raw)
        start = prefix.end() if prefix else 0
        lines.append(_Line(raw[:start], _sentences(raw[start:]), raw=raw))
    return lines


def _sentences(text: str) -> list[str]:
    """A line's sentences; markers written after a sentence's full stop stay with it."""
    parts: list[str] = []
    label = ""  # "2." of "1. Open it. 2. Choose Reset token." goes with its sentence
    for piece in SENTENCE_END.split(text.strip()):
        if LIST_NUMBER.match(piece):
            label = f"{piece} "
            continue
        piece, label = label + piece, ""
        markers = MARKERS_AT_START.match(piece)
        if markers and parts:
            parts[-1] = f"{parts[-1]} {markers.group().strip()}"
            piece = piece[markers.end() :]
        if piece.strip():
            parts.append(piece.strip())
        elif markers and not parts:
            parts.append(markers.group().strip())  # a line of markers only
    return parts


def _normalise(text: str) -> str:
    text = (
        text.replace("\u2019", "'")
        .replace("\u2018", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
    )
    text = EMPHASIS.sub("", MARKER.sub("", text))
    return " ".join(text.lower().split())


def _plain(sentence: str) -> str:
    """The sentence as words: no markers, mrkdwn, links, placeholders, step labels, or a
    lead-in naming the sources ("According to the provided information, ...")."""
    text = SLACK_MARKUP.sub(" ", PLACEHOLDER.sub(" ", URL.sub(" ", sentence)))
    text = " ".join(EMPHASIS.sub("", MARKER.sub("", text)).split())
    return SOURCE_LEAD.sub("", STEP_LABEL.sub("", text))


def _kind(sentence: str, question: str, acted: bool = False, listed: bool = False) -> Kind:
    plain = _plain(sentence)
    if states_not_found(plain):
        return "not_found"
    if DECLINE.match(plain) or (acted and ACTION_REPORT.search(plain)):
        return "chatter"  # about the assistant itself, not about the company
    words = plain.split()
    if not words:
        return "chatter"  # markers or markup only
    stripped = plain.rstrip("*_ )\"'")
    if stripped.endswith((":", "?")) or GREETING.match(plain) or COURTESY.match(plain):
        return "chatter"
    short = len(words) <= 6 and not stripped.endswith((".", "!"))
    if short and not listed and not NUMBER.search(plain):
        return "chatter"  # a heading, a label, "Steps"; a list item is content
    if _restates(plain, question):
        return "chatter"
    return "fact"


def _restates(plain: str, question: str) -> bool:
    """A lead-in that only repeats the question: "To reset your VPN token, do this." """
    if not question or not LEAD_IN.match(plain):
        return False
    if NUMBER.search(plain):
        return False
    content = content_terms(plain) - FILLER
    return content <= content_terms(question)


def content_terms(text: str) -> set[str]:
    words = WORD.findall(_normalise(text))
    return {_stem(w) for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def _stem(word: str) -> str:
    # Crude on purpose, applied alike to both sides: "tokens" meets "token", "scanned" "scan".
    word = word.replace("\u2019", "'").removesuffix("'s")
    if word.endswith("ies") and len(word) >= 6:
        return word[:-3] + "y"  # "batteries" meets "battery", "policies" "policy"
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def numbers_in(text: str) -> set[str]:
    """The numbers in a text, compared part by part so that "8:00" meets "08:00" and
    "1,200" meets "1200"; "45" still does not meet "90"."""
    found: set[str] = set()
    for number in NUMBER.findall(THOUSANDS.sub("", text)):
        found.update(part.lstrip("0") or "0" for part in re.split(r"[.,:]", number))
    return found


def _names(plain: str) -> set[str]:
    return {m.lower() for m in NAME.findall(f" {plain}")[1:] if m.lower() not in STOPWORDS} | {
        m.lower() for m in NAME.findall(plain) if m.isupper() and len(m) > 1
    }


# --- Scoring -------------------------------------------------------------------------------

Score = tuple[float, float, int]  # (word overlap, meaning, evidence index)


def _unsupported(sentence: str, reason: str) -> SentenceVerdict:
    return SentenceVerdict(sentence, "fact", reason=reason)


def _listed(items: set[str]) -> str:
    return ", ".join(sorted(items))


def _rank(score: Score) -> float:
    return score[0] + max(score[1], 0.0)


class _Scorer:
    def __init__(
        self,
        evidence: Sequence[Evidence],
        sentences: list[str],
        embedder: Embedder | None,
        question: str = "",
    ) -> None:
        self.evidence = [e for e in evidence if e.text.strip()]
        # A number the person gave ("after 14 months") is no invention when the answer
        # applies a source to it. Names they gave are not exempt: "the Enterprise plan
        # costs 18 GBP" is not supported by a price list that has no Enterprise plan.
        self.asked_numbers = numbers_in(question)
        self.asked_terms = content_terms(question) - self.asked_numbers - NO_TOPIC
        self.asked_words = set(WORD.findall(_normalise(question)))
        self.sentences = sentences
        self.terms = [content_terms(e.text) for e in self.evidence]
        all_text = " ".join(e.text for e in self.evidence)
        self.numbers = [numbers_in(e.text) for e in self.evidence]
        self.known_numbers = numbers_in(all_text)
        self.known_words = set(WORD.findall(_normalise(all_text))) | {
            _stem(w) for w in WORD.findall(_normalise(all_text))
        }
        self.embedder = embedder
        self.meaning: np.ndarray | None = None
        self.embedded = False

    def meaning_of(self, index: int) -> list[float]:
        """The sentence's meaning score against each evidence; zeros without an embedder.
        Embedded on first need: a draft whose sentences all share most of their words
        with a source costs no embedding at all."""
        if not self.embedded:
            self.meaning = self._meaning(self.embedder)
            self.embedded = True
        if self.meaning is None:
            return [0.0] * len(self.evidence)
        return [float(x) for x in self.meaning[index]]

    def _meaning(self, embedder: Embedder | None) -> np.ndarray | None:
        """Sentence x evidence: the best cosine between the sentence and any sentence of
        that evidence. One embedding call for all of it."""
        if embedder is None or not self.evidence:
            return None
        pieces: list[str] = []
        owner: list[int] = []
        for index, item in enumerate(self.evidence):
            for piece in evidence_pieces(item.text, wrapped=item.number is not None):
                pieces.append(piece)
                owner.append(index)
        pieces, owner = pieces[:MAX_EVIDENCE_PIECES], owner[:MAX_EVIDENCE_PIECES]
        if not pieces:
            return None
        # Imported here: the listeners use this module's evidence and "not found" checks
        # only, and need not import numpy (a tenth of a second) for them.
        import numpy as np

        vectors = embedder.embed([*self.sentences, *pieces])
        similarity = vectors[: len(self.sentences)] @ vectors[len(self.sentences) :].T
        best = np.full((len(self.sentences), len(self.evidence)), -1.0, dtype=np.float32)
        for column, index in enumerate(owner):
            best[:, index] = np.maximum(best[:, index], similarity[:, column])
        return best

    def verdict(self, index: int, sentence: str) -> SentenceVerdict:
        plain = self.sentences[index]
        terms = content_terms(plain) - self.asked_numbers
        numbers = numbers_in(plain)
        numbers -= self.asked_numbers
        unknown_numbers = numbers - self.known_numbers
        if unknown_numbers:
            return _unsupported(sentence, f"{_listed(unknown_numbers)} is in no source")
        topic = (terms - self.premise(plain)) & self.asked_terms
        missing_topic = {t for t in topic if t not in self.known_words}
        at_least, share = TOPIC_WORDS_MISSING
        if (
            len(missing_topic) >= at_least
            and len(missing_topic) >= share * len(topic)
            and not self._restates_a_source(index, numbers)
        ):
            reason = f"no source mentions {_listed(missing_topic)}"
            return SentenceVerdict(sentence, "fact", reason=reason, off_topic=True)
        # A name no source has, even one the person asked about: the sentence then says
        # something of a plan, place or person the sources do not cover.
        unknown_names = {n for n in _names(plain) if n not in self.known_words}
        own = {int(n) for n in MARKER.findall(sentence)}
        overlap = [len(terms & t) / len(terms) if terms else 0.0 for t in self.terms]
        plain_match = any(words >= WORDS_ALONE for words in overlap)
        meaning = [0.0] * len(overlap) if plain_match else self.meaning_of(index)
        scores: list[Score] = [
            (w, m, j) for j, (w, m) in enumerate(zip(overlap, meaning, strict=True))
        ]
        supporting = [
            score
            for score in scores
            if _supports(score[0], score[1], own_marker=self.evidence[score[2]].number in own)
        ] or self._together(terms, scores)
        if numbers and supporting:
            # A number must be in what the sentence is attributed to, not just anywhere:
            # "90 days" from the tokens page does not support a refund window of 90 days.
            alone = [s for s in supporting if numbers <= self.numbers[s[2]]]
            together = set().union(*(self.numbers[s[2]] for s in supporting))
            supporting = alone or (supporting if numbers <= together else [])
            if not supporting:
                return _unsupported(sentence, f"{_listed(numbers)} is not in the sources for it")
        if unknown_names:
            # A name the person asked about that no source has is what the question is
            # about, never forgiven: "The list price of the Widget Cloud Enterprise plan is
            # 18 GBP per seat per month, billed annually" shares nearly every other word
            # with the price list, where 18 GBP is the Plus plan's.
            asked = unknown_names & self.asked_words
            if asked:
                return _unsupported(sentence, f"{_listed(asked)} is in no source")
            supporting = [s for s in supporting if s[0] >= WORDS_DESPITE_NAME]
            if not supporting:
                return _unsupported(sentence, f"{_listed(unknown_names)} is in no source")
        if not supporting:
            return _unsupported(sentence, "no source says this")
        astray = self._figures_astray(plain, numbers, supporting) if numbers else set()
        if astray:
            return _unsupported(sentence, f"{_listed(astray)} is said there of something else")
        return SentenceVerdict(
            sentence, "fact", sources=self._markers(terms, own, supporting, scores), supported=True
        )

    def _figures_astray(self, plain: str, numbers: set[str], supporting: list[Score]) -> set[str]:
        """The sentence's numbers that its knowledge-base sources state only in lines about
        something else. Asked how much they may spend on meals, the 1.5B model answered
        "up to 100 GBP on meals", cited to the expenses page, where 100 GBP is the hotel
        limit outside London and meals are 40 GBP a day. Each number is judged by the words
        of its own clause: of the source lines that state figures, those that share the most
        of them (at least FIGURE_NEIGHBOURS) must hold it. Tool results and the
        conversation are not judged."""
        # Only lines that state a figure: a heading ("Prices, per seat per month") shares
        # words with every price.
        lines = [
            (found, content_terms(piece))
            for _, _, j in supporting
            if self.evidence[j].number is not None
            for piece in evidence_pieces(self.evidence[j].text)
            if (found := numbers_in(piece))
        ]
        unnumbered = [self.numbers[j] for _, _, j in supporting if self.evidence[j].number is None]
        elsewhere: set[str] = set().union(*unnumbered)
        astray = set()
        for clause in CLAUSE_BREAK.split(plain):
            figures = (numbers_in(clause) & numbers) - elsewhere
            words = content_terms(clause) - numbers_in(clause)
            if not figures or not lines:
                continue
            shared = [len(words & beside) for _, beside in lines]
            best = max(shared)
            if best < FIGURE_NEIGHBOURS:
                continue
            nearest = set().union(
                *(found for (found, _), n in zip(lines, shared, strict=True) if n == best)
            )
            astray |= figures - nearest
        return astray

    def premise(self, plain: str) -> set[str]:
        """The question's words in a sentence's opening condition that only restates the
        person's situation ("If you left your work laptop on the train, report it to
        security@..."): what the sentence claims follows it, and a source need not say
        "train" for the advice to be its. The words count for support as any others."""
        opening = PREMISE.match(plain)
        if opening is None:
            return set()
        words = content_terms(opening.group(1)) - FILLER
        asked = words & self.asked_terms
        return asked if words and len(asked) >= PREMISE_FROM_QUESTION * len(words) else set()

    def _restates_a_source(self, index: int, numbers: set[str]) -> bool:
        """Whether a sentence of one source says what the sentence says, numbers and all:
        then the question's words it lacks are how the person asked, not a topic no source
        covers. "The mileage rate when you use your own car for work is 45p per mile" lacks
        "rate", "use" and "work", and says "Mileage in your own car is paid at 45p per
        mile" (0.91 with MiniLM; "our parental leave policy is that everyone gets 25 days
        of holiday" against the holiday page: 0.66)."""
        return any(
            meaning >= SAME_MEANING and numbers <= self.numbers[j]
            for j, meaning in enumerate(self.meaning_of(index))
        )

    def _markers(
        self, terms: set[str], own: set[int], supporting: list[Score], scores: list[Score]
    ) -> tuple[int, ...]:
        """The numbers to cite: the best supporting source (one the model cited itself if
        it is among them), then another that covers what the first leaves out."""
        numbered = [s for s in supporting if self.evidence[s[2]].number is not None]
        if not numbered:
            return ()  # supported by tool results or the conversation alone
        ranked = sorted(numbered, key=lambda s: (self.evidence[s[2]].number not in own, -_rank(s)))
        chosen = [ranked[0][2]]
        covered = terms & self.terms[chosen[0]]
        others = sorted(
            (s for s in scores if s[2] != chosen[0] and self.evidence[s[2]].number is not None),
            key=lambda s: -s[0],
        )
        for _, _, j in others:
            if len(chosen) >= MAX_MARKERS:
                break
            adds = (terms & self.terms[j]) - covered
            if len(adds) >= 2 or (terms and len(adds) / len(terms) >= 0.3):
                chosen.append(j)
                covered |= adds
        return tuple(sorted(n for n in (self.evidence[j].number for j in chosen) if n is not None))

    def _together(self, terms: set[str], scores: list[Score]) -> list[Score]:
        """Two sources that support a sentence only together ("open the portal and scan
        the code" from a page each): their words cover it and each adds some."""
        if not terms or len(scores) < 2:
            return []
        ranked = sorted(scores, key=lambda s: -s[0])[:4]
        for a in range(len(ranked)):
            for b in range(a + 1, len(ranked)):
                first, second = self.terms[ranked[a][2]], self.terms[ranked[b][2]]
                if not (terms & first - second) or not (terms & second - first):
                    continue
                if len(terms & (first | second)) / len(terms) >= WORDS_ALONE:
                    return [ranked[a], ranked[b]]
        return []


def _supports(words: float, meaning: float, *, own_marker: bool) -> bool:
    if words >= WORDS_ALONE or meaning >= MEANING_ALONE:
        return True
    if words >= WORDS_WITH_MEANING[0] and meaning >= WORDS_WITH_MEANING[1]:
        return True
    if not own_marker:
        return False
    low_words, low_meaning = WORDS_AND_MEANING_FOR_OWN_MARKER
    return words >= WORDS_FOR_OWN_MARKER or (words >= low_words and meaning >= low_meaning)


def evidence_pieces(text: str, *, wrapped: bool = True) -> list[str]:
    """The sentences of a piece of evidence, each whole, for the embedder, the figure check
    and the quoted deciding line. A source's sentences, list items and headings (``wrapped``):
    markers taken off, and a line that goes on in lower case or with a figure joined to the
    one before. In "IT unlocks accounts within\n   one hour" the figure is on the next line,
    and the rule was quoted in half. A tool result's lines one by one: they are fields."""
    blocks = BLOCK_BREAK.split(HEADING_LINE.sub(r"\1\n", text)) if wrapped else [text]
    pieces: list[str] = []
    for block in blocks:
        lines: list[str] = []
        for raw in block.splitlines():
            line = LINE_PREFIX.sub("", raw).strip().lstrip("#").strip()
            if wrapped and lines and WRAPPED_ON.match(line):
                lines[-1] += " " + line
            else:
                lines.append(line)
        for line in lines:
            pieces.extend(p for p in SENTENCE_END.split(line) if len(p.split()) >= 2)
    return pieces


# --- Rebuilding ----------------------------------------------------------------------------


def _rebuild(
    lines: list[_Line], verdicts: dict[tuple[int, int], SentenceVerdict], unsupported: Unsupported
) -> str:
    out: list[str] = []
    # A small model caught in a loop writes the same sentences again until its token cap
    # (the 1.5B model gave the contact's address and title six times over): each sentence
    # of some length is kept once.
    said: set[str] = set()
    for line_no, line in enumerate(lines):
        if line.code:
            out.append(line.raw)
            continue
        if not line.parts:
            out.append("")
            continue
        kept = []
        for i in range(len(line.parts)):
            verdict = verdicts[(line_no, i)]
            text = _rewritten(verdict, unsupported)
            words = _normalise(MARKER.sub("", text)).split()
            if len(words) >= REPEAT_WORDS and " ".join(words) in said:
                continue
            said.add(" ".join(words))
            if text:
                kept.append(text)
        if kept:
            out.append(line.prefix + " ".join(kept))
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _rewritten(verdict: SentenceVerdict, unsupported: Unsupported) -> str:
    sentence = verdict.text
    written = [int(n) for n in MARKER.findall(sentence)]
    if verdict.kind != "fact":
        # Chatter and "not found" cite nothing; markers on them are noise.
        return _with_markers(sentence, []) if written else sentence
    if not verdict.supported:
        if unsupported == "drop":
            return ""
        return f"{_with_markers(sentence, [])} {FLAG_NOTE}"
    if list(dict.fromkeys(written)) == list(verdict.sources):
        return sentence  # the model's own markers were right: keep its text as written
    return _with_markers(sentence, list(verdict.sources))


def _with_markers(sentence: str, numbers: list[int]) -> str:
    bare = " ".join(MARKER.sub("", sentence).split())
    bare = re.sub(r"\s+([.,;:!?])", r"\1", bare)
    if not numbers:
        return bare
    markers = "".join(f"[{n}]" for n in numbers)
    end = TERMINAL.search(bare)
    if end:
        return f"{bare[: end.start()].rstrip()} {markers}{end.group()}"
    return f"{bare} {markers}"
