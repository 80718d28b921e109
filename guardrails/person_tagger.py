"""People's names, found by a small conditional random field (CRF) over word features.

Each word gets a tag (B: a name starts, I: a name goes on, O: not a name) from features
that need no language model: the word itself, its shape ("Xx", "x", "XX"), its last
letters ("-ić", "-sson", "-ova" mark surnames across languages), whether the census lists
know it as a first name or a surname, and the same for its neighbours ("directed by",
"my name is", "Dear Ms"). CRFsuite (`python-crfsuite`) does the tagging in C++; the
features are built here in Python, which is most of the cost (about 0.4 ms for a
500-character message on one core).

The model, `guardrails/data/person_tagger.crfsuite`, ships with the package; it is
trained by `scripts/train_person_tagger.py` on one half of the presidio-research set and
scored on the other (`bench/guardrails.py` prints both).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pycrfsuite  # ships no types

from guardrails.names import NameLists, load_name_lists

MODEL_RESOURCE = "data/person_tagger.crfsuite"
# Words (a possessive "'s" is split off: "Ström's" -> "Ström", "'", "s"), runs of digits,
# and single punctuation marks.
_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019\-](?!s\b)[^\W\d_]+)*|\d+|[^\w\s]", re.UNICODE)
BEGIN, INSIDE, OUTSIDE = "B", "I", "O"
# A title or a salutation, then capitalised words: a name however rare ("Dear Ms Okafor",
# "Regards, Okonkwo"), found by rule where the tagger, which learned from few letters,
# is unsure. General English usage, not learned from the corpus.
_CUED_NAME = re.compile(
    r"(?:\b(?i:dear|regards|sincerely)[,:]?\s+)?"
    r"(?:\b(?:Mr|Mrs|Ms|Mx|Dr|Prof)\.?[ \t]+|\b(?i:dear|regards|sincerely)[,:]?\s+)"
    r"((?!(?:The|All|Team|Sir|Madam|Customer|Colleagues?)\b)[^\W\d_a-z][\w'\u2019\-]*"
    r"(?:[ \t][^\W\d_a-z][\w'\u2019\-]*){0,2})"
)
CUED_NAME_SCORE = 0.75


@dataclass(frozen=True)
class NameSpan:
    start: int
    end: int
    score: float  # the least sure of its words' tag probabilities


def tokens(text: str) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text))


def _shape(word: str) -> str:
    if word.isdigit():
        return "d"
    if not word[0].isalpha():
        return "p"
    if word.isupper():
        return "X" if len(word) == 1 else "XX"
    if word[0].isupper():
        return "Xx"
    return "x" if word.islower() else "xX"


# Features of a word that depend on the word alone, kept per distinct word: most of a
# message's words were seen in earlier messages, and building these strings is most of
# the tagger's cost. Bounded, so odd input cannot grow it without end.
FEATURE_CACHE_WORDS = 50_000


@dataclass(frozen=True)
class _Word:
    own: tuple[str, ...]
    as_previous: tuple[str, ...]  # what the next word sees of it
    as_second_previous: tuple[str, ...]
    as_next: tuple[str, ...]  # what the previous word sees of it
    as_second_next: tuple[str, ...]


class WordFeatures:
    """Turns a message's words into the feature names the CRF sees, one list per word:
    the word itself, its shape and ending, whether the census lists know it as a first
    name or a surname, and the same for its neighbours."""

    def __init__(self, names: NameLists, known: frozenset[str] | None = None) -> None:
        """`known`: the features a trained model has weights for; the others are left
        out (the tagger would look each one up to find nothing)."""
        self._first = names.first_names
        self._last = names.surnames
        self._known = known
        self._cache: dict[str, _Word] = {}

    def __call__(self, text: str, words: Sequence[re.Match[str]]) -> list[list[str]]:
        described = [self._describe(w.group()) for w in words]
        last = len(words) - 1
        rows = []
        for i, word in enumerate(described):
            row = list(word.own)
            if i == 0:
                row.append("bos")
            else:
                if "\n" in text[words[i - 1].end() : words[i].start()]:
                    row.append("nl")  # a line of its own: a signature, an address block
                row += described[i - 1].as_previous
                if i > 1:
                    row += described[i - 2].as_second_previous
            if i == last:
                row.append("eos")
            else:
                row += described[i + 1].as_next
                if i < last - 1:
                    row += described[i + 2].as_second_next
            rows.append(row)
        return rows

    def _describe(self, word: str) -> _Word:
        found = self._cache.get(word)
        if found is not None:
            return found
        lower = word.lower()
        shape = _shape(word)
        first, last = lower in self._first, lower in self._last
        own = [f"w={lower}", f"sh={shape}", f"s3={lower[-3:]}", f"s2={lower[-2:]}"]
        if first:
            own.append("fn")
        if last:
            own.append("ln")
        if not lower.isascii():
            own.append("na")
        described = _Word(
            own=self._kept(own),
            as_previous=self._kept([f"-1w={lower}", f"-1sh={shape}", *(["-1fn"] * first)]),
            as_second_previous=self._kept([f"-2w={lower}"]),
            as_next=self._kept([f"+1w={lower}", f"+1sh={shape}", *(["+1ln"] * last)]),
            as_second_next=self._kept([f"+2w={lower}"]),
        )
        if len(self._cache) >= FEATURE_CACHE_WORDS:
            self._cache.clear()
        self._cache[word] = described
        return described

    def _kept(self, names: list[str]) -> tuple[str, ...]:
        known = self._known
        return tuple(names if known is None else (n for n in names if n in known))


def tags_for(words: Sequence[re.Match[str]], spans: Sequence[tuple[int, int]]) -> list[str]:
    """The B/I/O tag of each word, given labelled name spans (for training)."""
    tags = []
    for word in words:
        tag = OUTSIDE
        for start, end in spans:
            if word.start() >= start and word.end() <= end:
                tag = BEGIN if word.start() == start else INSIDE
        tags.append(tag)
    return tags


def _is_word_identity(feature: str) -> bool:
    return feature.startswith(("w=", "-1w=", "-2w=", "+1w=", "+2w="))


def default_model_path() -> Path:
    return Path(str(resources.files("guardrails").joinpath(MODEL_RESOURCE)))


class PersonTagger:
    """Finds name spans in text. Safe to share between threads: each thread tags with its
    own CRFsuite tagger (one is not safe to call from two threads at once)."""

    def __init__(self, model: Path | None = None, names: NameLists | None = None) -> None:
        self._model = model or default_model_path()
        if not self._model.exists():
            raise FileNotFoundError(f"the person-name model is missing: {self._model}")
        self._local = threading.local()
        # Opening it here fails now, not on the first message, if the file is unreadable.
        known = frozenset(attribute for attribute, _ in self._tagger().info().state_features)
        names = names or load_name_lists()
        self._features = WordFeatures(names, known)
        self._not_names = names.not_names

    def _tagger(self) -> pycrfsuite.Tagger:
        tagger = getattr(self._local, "tagger", None)
        if tagger is None:
            tagger = pycrfsuite.Tagger()
            tagger.open(str(self._model))
            self._local.tagger = tagger
        return tagger

    def find(self, text: str) -> list[NameSpan]:
        words = tokens(text)
        if not words:
            return []
        tagger = self._tagger()
        tags = tagger.tag(self._features(text, words))
        spans: list[NameSpan] = []
        start = -1
        score = 1.0
        for i, tag in enumerate(tags):
            if tag == OUTSIDE:
                continue
            if tag == BEGIN or start < 0 or tags[i - 1] == OUTSIDE:
                start, score = i, 1.0
            score = min(score, tagger.marginal(tag, i))
            if i + 1 == len(tags) or tags[i + 1] != INSIDE:
                if not all(
                    w.group().lower() in self._not_names
                    for w in words[start : i + 1]
                    if w.group()[0].isalpha()
                ):
                    spans.append(NameSpan(words[start].start(), words[i].end(), score))
                start = -1
        for cue in _CUED_NAME.finditer(text):
            begin, end = cue.span(1)
            if cue.group(1).lower() in self._not_names:
                continue
            if not any(span.start < end and begin < span.end for span in spans):
                spans.append(NameSpan(begin, end, CUED_NAME_SCORE))
        return sorted(spans, key=lambda span: span.start)


def train(
    samples: Iterable[tuple[str, Sequence[tuple[int, int]]]],
    model: Path,
    names: NameLists,
    *,
    l1: float = 0.1,
    l2: float = 0.01,
    iterations: int = 200,
) -> None:
    """Fit the CRF to (text, name spans) samples and write it to `model`. L-BFGS with
    elastic-net regularisation: L1 keeps the model small by dropping features that do
    not help.

    Each sample is learned twice: as it is, and with every word's identity hidden (only
    shapes, endings, name lists and position). Without the second copy the weights go to
    the words of the corpus's few dozen templates ("directed by", "ex-Zombie"), and the
    tagger missed "Please ask Jennifer Walsh about it"; with it the general clues carry
    weight of their own."""
    crf = pycrfsuite.Trainer(verbose=False)
    features = WordFeatures(names)
    for text, spans in samples:
        words = tokens(text)
        if words:
            rows, tags = features(text, words), tags_for(words, spans)
            crf.append(rows, tags)
            crf.append([[f for f in row if not _is_word_identity(f)] for row in rows], tags)
    crf.set_params(
        {"c1": l1, "c2": l2, "max_iterations": iterations, "feature.possible_transitions": True}
    )
    crf.train(str(model))
