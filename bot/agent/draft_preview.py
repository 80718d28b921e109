"""The Draft step's answer, shown in Slack while the model is still writing it.

Why the draft is streamed from the model rather than the verified text in chunks: the
slow part of a run is the model writing its answer, so only streaming *that* lets people
read early. Chunking the finished text would look live while showing nothing sooner.
The Draft step returns JSON (answer and citations), so the preview reads the ``answer``
field out of the incomplete JSON as it arrives (pydantic-core's partial parsing).

Verify must keep the last word, so the preview shows only what Verify would post as it
is: with sources, each finished line once the grounding (rag/attribution.py, by word
overlap here) supports it, with the markers Verify gives it, even if the model wrote none;
in the line being written, text up to its latest citation if that part is already
grounded as written. A line nothing supports, a citation of a source that was not given,
or a "not found" ends the preview, so a made-up claim is never shown. What is shown also
goes through the output guardrails (the caller's `show`). Checks only the whole draft can
answer (its length, meaning that only embeddings see) may still change it after it was
shown: then the final write replaces it and says so
(`connectors.slack.streaming.ReplyWriter.finish`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import structlog
from pydantic_core import from_json

from core.knowledge import Passage
from rag.attribution import attribute, states_not_found
from rag.citations import MARKER, evidence

log = structlog.get_logger(__name__)


@dataclass
class DraftPreview:
    """Told each draft's raw JSON as it grows; shows the part of its answer that passes."""

    show: Callable[[str], None]
    enabled: bool = True

    def for_sources(self, passages: Sequence[Passage]) -> Callable[[str], None]:
        """Where the model's text goes for a draft written from ``passages``."""
        return partial(self.model_text, passages)

    def model_text(self, passages: Sequence[Passage], raw_json: str) -> None:
        if not self.enabled:
            return
        answer = grounded_prefix(partial_answer(raw_json), passages)
        if answer is None:
            # This draft already fails Verify: show nothing more of this run's drafts.
            log.info("draft.preview_ended", reason="citations")
            self.enabled = False
            return
        if not answer:
            return
        try:
            self.show(answer)
        except Exception:
            # A preview is a courtesy; a failure in it (a database hiccup while recording
            # the streamed message) must not fail the model call that feeds it.
            log.exception("draft.preview_failed")
            self.enabled = False


def partial_answer(raw_json: str) -> str:
    """The ``answer`` string of a Draft whose JSON may be cut off anywhere."""
    try:
        parsed = from_json(raw_json, allow_partial="trailing-strings")
    except ValueError:
        return ""
    answer = parsed.get("answer") if isinstance(parsed, dict) else None
    return answer if isinstance(answer, str) else ""


def grounded_prefix(answer: str, passages: Sequence[Passage]) -> str | None:
    """The start of a partly written answer that Verify would post as it is shown, or None
    when what is written already fails (the preview ends).

    With no sources there is nothing to ground in and every citation is invented, so text
    shows freely until a citation appears.
    """
    if any(states_not_found(line) for line in answer.splitlines()):
        # A "not found" is posted as the plain not-found answer, without the markers or
        # the wording a model gives it: showing the model's version would only be replaced.
        return None
    given = {str(n) for n in range(1, len(passages) + 1)}
    if any(n not in given for n in MARKER.findall(answer)):
        return None
    if not passages:
        return answer
    finished, _, current = answer.rpartition("\n")
    sources = tuple(passages)
    done = ""
    if finished:
        grounded = _grounded(finished, sources)
        if grounded is None:
            return None
        done = grounded + finished[len(finished.rstrip("\n")) :] + "\n"  # blank lines kept
    ends = [marker.end() for marker in MARKER.finditer(current)]
    written = current[: ends[-1]] if ends else ""
    if written and _grounded(written, sources) == written.strip():
        return done + written
    return done


@lru_cache(maxsize=16)
def _grounded(text: str, passages: tuple[Passage, ...]) -> str | None:
    """`text` as Verify would post it, judged by word overlap; None if any fact in it is
    unsupported. Cached: the preview asks again for the same finished lines at every
    piece the model streams."""
    result = attribute(text, evidence(passages))
    if result.unsupported or result.says_not_found:
        return None
    return result.answer
