"""Text classifiers (toxicity, prompt injection) from a local transformers model.

Only a directory on this machine is accepted, loaded with `local_files_only`, so a
misconfigured path fails at start instead of reaching for a model hub.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_TOKENS = 512  # what BERT-sized classifiers take; longer text is read in chunks
# Characters per chunk for each token the model takes: English runs about four to a
# token, so three leaves room and nothing of a chunk is cut off by truncation.
CHARS_PER_TOKEN = 3
MAX_CHARS = 12_000
MAX_BATCH = 16  # chunks per forward pass; bounds the memory a long document takes  # a very long document is judged on its first 12,000 characters


class ClassifierUnavailable(Exception):
    """The configured model cannot be loaded; the message says which and why."""


@dataclass(frozen=True)
class ClassifierStatus:
    """What /agent status and the start-up log say about a check."""

    check: str  # "toxicity", "injection classifier"
    state: str  # "on" | "off"
    detail: str

    def line(self) -> str:
        return f"{self.check}: {self.state} ({self.detail})"


@dataclass
class TextClassifier:
    """A transformers text-classification pipeline returning every label's score."""

    path: str
    pipeline: Any
    labels: tuple[str, ...]
    max_tokens: int = MAX_TOKENS  # the model's own limit when smaller
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def scores(self, text: str) -> dict[str, float]:
        """Each label's highest score over the text's chunks."""
        return self.scores_many([text])[0]

    def scores_many(self, texts: Sequence[str]) -> list[dict[str, float]]:
        size = self.max_tokens * CHARS_PER_TOKEN
        chunked = [list(_chunks(text, size)) for text in texts]
        flat = [chunk for chunks in chunked for chunk in chunks]
        # One pipeline call per batch; the lock because a pipeline is not documented as
        # safe to call from the worker's several threads at once.
        with self._lock:
            outputs = self.pipeline(flat, truncation=True, max_length=self.max_tokens, top_k=None)
        results = []
        position = 0
        for chunks in chunked:
            best: dict[str, float] = {}
            for output in outputs[position : position + len(chunks)]:
                for item in output:
                    label, score = str(item["label"]), float(item["score"])
                    best[label] = max(best.get(label, 0.0), score)
            position += len(chunks)
            results.append(best)
        return results


def _chunks(text: str, size: int) -> Iterable[str]:
    if not text:
        yield ""
        return
    for start in range(0, min(len(text), MAX_CHARS), size):
        yield text[start : start + size]


def set_inference_threads(threads: int) -> None:
    """torch's intra-op threads, for the whole process. Small classifier inputs gain
    nothing from several threads and lose a lot to their synchronisation on a busy
    machine (ten times slower on two shared cores), so the default is one."""
    import torch

    torch.set_num_threads(threads)


def load_classifier(path: str) -> TextClassifier:
    """Load a sequence-classification model and its tokenizer from a local directory."""
    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise ClassifierUnavailable(
            f"{path} is not a local model directory (no config.json): download the model "
            "there first; nothing is fetched at run time"
        )
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TextClassificationPipeline,
    )

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(directory), local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ClassifierUnavailable(f"cannot load the model in {path}: {exc}") from None
    model.eval()
    pipeline = TextClassificationPipeline(model=model, tokenizer=tokenizer, device=-1)
    labels = tuple(str(label) for label in model.config.id2label.values())
    # Truncating past the model's position embeddings would crash inference on long text.
    limits = [MAX_TOKENS, getattr(model.config, "max_position_embeddings", MAX_TOKENS)]
    if isinstance(getattr(tokenizer, "model_max_length", None), int):
        limits.append(tokenizer.model_max_length)
    return TextClassifier(
        path=str(directory), pipeline=pipeline, labels=labels, max_tokens=min(limits)
    )
