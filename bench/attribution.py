"""What grounding a draft costs in the Verify step, and how often it gets it right.

Verify attributes each sentence of a draft to the passages that support it
(rag/attribution.py): by word overlap, and when a sentence shares too few words with every
passage, by meaning: then one embedding call for the draft's sentences and the sentences
of the (up to 8) passages it was given, with the worker's model on one torch thread as the
worker runs it. Both cases are timed. Set beside the Draft it checks: Qwen2.5-Coder-1.5B took
20-120 s per Draft on this 2-core machine (issue 15), so the figure to watch is whether
Verify stays a small fraction of that.

The drafts are made from the sandbox's sample knowledge, chunked as ingestion does: each
has a lead-in, sentences taken from the passages it was given (without markers, as the
small model wrote them), one of them reworded, and one invented sentence: a passage's
sentence with its number changed, or an off-topic claim. Checked: every sentence taken
from a passage is kept and cited by that passage's number; every invented one is left out.
"""

from __future__ import annotations

import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.script import Report, parser  # noqa: E402
from rag.attribution import Evidence, attribute  # noqa: E402
from rag.chunking import ChunkingConfig, chunk_document  # noqa: E402
from rag.embeddings import LocalEmbedder, Vectors  # noqa: E402
from rag.loaders.files import load_file  # noqa: E402

SAMPLE = REPO / "sandbox" / "sample_knowledge"
PASSAGES_PER_VERIFY = 8  # bot/agent/loop.py PASSAGES_PER_SEARCH
TAKEN_PER_DRAFT = 3
FULL_DRAFTS, SMOKE_DRAFTS = 60, 3
SEED = 15
DRAFT_SECONDS = (20.0, 120.0)  # issue 15, the 1.5B model's Draft on this machine
AIM_P95_MS = 1_000.0  # Verify under 1 s at p95: at most 5% of the fastest Draft

SENTENCE = re.compile(r"(?<=[.!?])\s+")
NUMBER = re.compile(r"\b\d+\b")
OFF_TOPIC = [
    "The cafeteria serves vegan lunches on Fridays.",
    "Parking permits are renewed every January at the front desk.",
    "The quarterly all-hands meeting moved to the Lisbon office.",
    "New laptops are ordered through Procurement with a cost centre.",
]
REWORDINGS = [("Customers", "Buyers"), ("choose", "pick"), ("within", "in under"), ("ask", "post")]


def passages() -> list[Evidence]:
    """The sample knowledge as ingestion chunks it (600-character chunks, as in tests)."""
    config = ChunkingConfig(max_chars=600, overlap_chars=80)
    texts = []
    for path in sorted(SAMPLE.glob("*.md")):
        for document in load_file(path):
            for chunk in chunk_document(document, config):
                texts.append(chunk.embedding_text())
    return [Evidence(text) for text in texts]


def sentences_of(text: str) -> list[str]:
    found = []
    for line in text.splitlines()[1:]:
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line).strip()
        found += [s for s in SENTENCE.split(line) if len(s.split()) >= 6 and s.endswith(".")]
    return found


def invented(rng: random.Random, given: list[str]) -> str:
    """A sentence no passage supports: a given sentence with a changed number, or a claim
    about something else."""
    with_numbers = [s for s in given if NUMBER.search(s)]
    if with_numbers and rng.random() < 0.5:
        sentence = rng.choice(with_numbers)
        number = NUMBER.search(sentence)
        assert number is not None
        return sentence.replace(number.group(), str(int(number.group()) + 17), 1)
    return rng.choice(OFF_TOPIC)


def reworded(sentence: str) -> str:
    for word, other in REWORDINGS:
        if word in sentence:
            return sentence.replace(word, other, 1)
    return sentence


class Counted:
    """The embedder, counting its calls: did this Verify embed?"""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.calls = 0
        self.model_name, self.dimensions = inner.model_name, inner.dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        return self.inner.embed(texts)


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[int(share * (len(values) - 1))] * 1000 if values else float("nan")


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    report = Report("attribution", "grounding (Verify) benchmark", args.smoke)
    rng = random.Random(SEED)
    corpus = passages()
    started = time.perf_counter()
    embedder = Counted(LocalEmbedder(threads=1))  # as the worker builds it
    embedder.embed(["warm-up"])
    load_seconds = time.perf_counter() - started

    embedded: list[float] = []  # Verify steps that embedded
    by_words: list[float] = []  # Verify steps that word overlap decided
    words_only: list[float] = []  # the same drafts with no embedder at all
    kept = cited_right = taken_total = dropped = invented_total = 0
    for _ in range(SMOKE_DRAFTS if args.smoke else FULL_DRAFTS):
        given = rng.sample(corpus, min(PASSAGES_PER_VERIFY, len(corpus)))
        numbered = [Evidence(p.text, n) for n, p in enumerate(given, start=1)]
        pool = [(n, s) for n, p in enumerate(given, start=1) for s in sentences_of(p.text)]
        taken = rng.sample(pool, min(TAKEN_PER_DRAFT, len(pool)))
        taken = [(n, reworded(s) if i == 0 else s) for i, (n, s) in enumerate(taken)]
        fake = invented(rng, [s for _, s in pool])
        lines = ["Here is what I found:", *(s for _, s in taken), fake]
        draft = "\n".join(lines)

        calls = embedder.calls
        t0 = time.perf_counter()
        result = attribute(draft, numbered, question="", embedder=embedder)
        (embedded if embedder.calls > calls else by_words).append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        attribute(draft, numbered, question="")
        words_only.append(time.perf_counter() - t0)

        verdicts = {v.text: v for v in result.sentences}
        for number, sentence in taken:
            taken_total += 1
            verdict = verdicts.get(sentence)
            if verdict is not None and verdict.supported:
                kept += 1
                cited_right += number in verdict.sources
        invented_total += 1
        verdict = verdicts.get(fake)
        dropped += verdict is not None and not verdict.supported

    everything = embedded + by_words
    p50, p95 = percentile(everything, 0.5), percentile(everything, 0.95)
    lexical = statistics.median(words_only) * 1000
    low, high = DRAFT_SECONDS
    report.add(
        "",
        f"{len(everything)} Verify steps, {PASSAGES_PER_VERIFY} passages each from "
        f"{len(corpus)} sample-knowledge chunks; all-MiniLM-L6-v2 on 1 torch thread "
        f"(loaded in {load_seconds:.1f} s, once per worker)",
        "",
        f"{'figure':<58}{'measured':>10}",
        "-" * 68,
        f"{'Verify as the worker runs it, p50 ms':<58}{p50:>10.0f}",
        f"{'Verify as the worker runs it, p95 ms':<58}{p95:>10.0f}",
        f"{f'  {len(embedded)} that embedded, p50 ms':<58}{percentile(embedded, 0.5):>10.0f}",
        f"{f'  {len(by_words)} decided by words, p50 ms':<58}{percentile(by_words, 0.5):>10.1f}",
        f"{'Verify by word overlap alone, p50 ms':<58}{lexical:>10.1f}",
        f"{'the Draft it checks (1.5B model, issue 15), s':<58}{f'{low:.0f}-{high:.0f}':>10}",
        f"{'Verify p95 as a share of the fastest Draft':<58}{p95 / 1000 / low:>10.1%}",
        f"{'sentences taken from a passage: kept':<58}{f'{kept}/{taken_total}':>10}",
        f"{'  and cited by that passage':<58}{f'{cited_right}/{taken_total}':>10}",
        f"{'invented sentences left out':<58}{f'{dropped}/{invented_total}':>10}",
        "",
    )
    report.aim(p95 <= AIM_P95_MS, f"Verify p95 {p95:.0f} ms <= {AIM_P95_MS:.0f} ms")
    report.check(dropped == invented_total, "every invented sentence is left out")
    report.aim(kept >= 0.9 * taken_total, f"{kept}/{taken_total} taken sentences kept (aim >= 90%)")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
