"""Replacing personal data in text, with presidio-anonymizer, and bringing it back.

Each found value becomes either a numbered placeholder of its conversation (<EMAIL_1>,
the same value always the same number) or a plain mask (<EMAIL>) that nothing can undo.

The detector may still be loading when the first text arrives (the worker loads it in
the background after it starts): `redact` waits for it, so no text leaves unscreened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.warmup import Warming
from guardrails.entities import ENTITY_OF_LABEL, LABELS, SECRET
from guardrails.partial_form import partial_form
from guardrails.vault import PLACEHOLDER

if TYPE_CHECKING:
    from presidio_anonymizer import AnonymizerEngine

    from guardrails.pii import PiiDetector

# (entity, value) pairs -> their placeholders; PlaceholderVault.placeholders_for, bound
# to one tenant and conversation.
Assign = Callable[[list[tuple[str, str]]], dict[tuple[str, str], str]]


@dataclass(frozen=True)
class Redacted:
    text: str
    # How many values of each entity were hidden; never the values themselves.
    counts: Mapping[str, int]

    @property
    def hidden(self) -> int:
        return sum(self.counts.values())


def mask_label(entity: str) -> str:
    return f"<{LABELS[entity]}>"


@dataclass
class Redactor:
    # Every redaction waits for it: see the module's docstring.
    detector: Warming[PiiDetector]
    _anonymizer: AnonymizerEngine | None = field(default=None, init=False, repr=False)

    def redact(
        self,
        text: str,
        *,
        entities: Sequence[str] | None = None,
        reversible: Collection[str] = (),
        assign: Assign | None = None,
    ) -> Redacted:
        """`text` with every value of `entities` replaced: those in `reversible` by the
        placeholders `assign` gives them, the others by a mask."""
        if entities is not None and not entities:
            return Redacted(text, {})
        spans = self.detector.get().detect(text, entities)
        if not spans:
            return Redacted(text, {})
        placeholders: dict[tuple[str, str], str] = {}
        if assign is not None:
            keep = [(s.entity, text[s.start : s.end]) for s in spans if s.entity in reversible]
            placeholders = assign(keep) if keep else {}

        def replacer(entity: str) -> Callable[[str], str]:
            return lambda value: placeholders.get((entity, value), mask_label(entity))

        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult  # see _engine

        kinds = {s.entity for s in spans}
        result = self._engine().anonymize(
            text=text,
            analyzer_results=[RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans],
            operators={e: OperatorConfig("custom", {"lambda": replacer(e)}) for e in kinds},
            # Two e-mail addresses separated by a space are two values, not one.
            merge_entities_with_spaces=False,
        )
        return Redacted(result.text, dict(Counter(s.entity for s in spans)))

    def _engine(self) -> AnonymizerEngine:
        # Imported on first use, not with this module: presidio-anonymizer imports
        # presidio-analyzer, and that spaCy, transformers and torch (seconds), which the
        # detector has loaded by the time there is anything to replace. Two threads may
        # both build one here; the engine holds no state, so either will do.
        if self._anonymizer is None:
            from presidio_anonymizer import AnonymizerEngine

            self._anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]  # untyped __init__
        return self._anonymizer

    def mask(self, text: str, entities: Sequence[str] | None = None) -> str:
        return self.redact(text, entities=entities).text


def placeholders_in(text: str) -> set[str]:
    return {m.group() for m in PLACEHOLDER.finditer(text)}


def restore(text: str, values: Mapping[str, str]) -> str:
    """`text` with each known placeholder replaced by its value; unknown ones stay."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(), m.group()), text)


def partial(placeholder: str, value: str) -> str:
    """What an approver sees of a value when the policy says "partial"."""
    match = PLACEHOLDER.fullmatch(placeholder)
    entity = ENTITY_OF_LABEL.get(match.group(1), "") if match else ""
    if entity == SECRET:
        return mask_label(SECRET)
    return partial_form(entity, value)
