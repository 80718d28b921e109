"""Toxicity: a local text classifier's verdict on inbound messages and drafts.

With no model configured the check is off and says so (`status()`), rather than passing
everything while looking as if it had checked.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from guardrails.classifier import ClassifierStatus, TextClassifier

# Labels of common toxicity models that mean "toxic" (unitary/toxic-bert's six, the
# binary "toxic" of others); compared case-insensitively. GUARDRAILS_TOXICITY_LABELS
# replaces the list for a model that names them differently.
DEFAULT_TOXIC_LABELS = (
    "toxic",
    "toxicity",
    "severe_toxic",
    "severe_toxicity",
    "obscene",
    "threat",
    "insult",
    "identity_hate",
    "identity_attack",
    "hate",
    "offensive",
)


@dataclass(frozen=True)
class ToxicityVerdict:
    checked: bool  # False when the check is off
    toxic: bool
    score: float  # the highest score among toxic labels; 0.0 when not checked
    label: str | None

    def reason(self) -> str:
        return f"toxicity {self.score:.2f} ({self.label})" if self.label else "toxicity"


NOT_CHECKED = ToxicityVerdict(checked=False, toxic=False, score=0.0, label=None)


@dataclass(frozen=True)
class ToxicityCheck:
    classifier: TextClassifier | None
    threshold: float
    toxic_labels: Collection[str] = DEFAULT_TOXIC_LABELS

    def check(self, text: str, *, threshold: float | None = None) -> ToxicityVerdict:
        if self.classifier is None or not text.strip():
            return NOT_CHECKED
        wanted = {label.lower() for label in self.toxic_labels}
        if not any(label.lower() in wanted for label in self.classifier.labels):
            return NOT_CHECKED  # status() says why: the model names its labels otherwise
        limit = self.threshold if threshold is None else threshold
        scores = self.classifier.scores(text)
        toxic = {label: s for label, s in scores.items() if label.lower() in wanted}
        if not toxic:
            return ToxicityVerdict(checked=True, toxic=False, score=0.0, label=None)
        label = max(toxic, key=lambda name: toxic[name])
        return ToxicityVerdict(
            checked=True, toxic=toxic[label] >= limit, score=toxic[label], label=label
        )

    def status(self) -> ClassifierStatus:
        if self.classifier is None:
            return ClassifierStatus(
                "toxicity", "off", "no model configured: set GUARDRAILS_TOXICITY_MODEL"
            )
        wanted = {label.lower() for label in self.toxic_labels}
        used = [label for label in self.classifier.labels if label.lower() in wanted]
        if not used:
            return ClassifierStatus(
                "toxicity",
                "off",
                f"model {self.classifier.path} has none of the toxic labels "
                f"(its labels: {', '.join(self.classifier.labels)}): "
                "set GUARDRAILS_TOXICITY_LABELS",
            )
        return ClassifierStatus(
            "toxicity",
            "on",
            f"model {self.classifier.path}, labels {', '.join(used)}, threshold {self.threshold:g}",
        )
