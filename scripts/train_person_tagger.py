"""Train the person-name tagger on the tuning half of the presidio-research PII set.

    .venv/bin/python scripts/train_person_tagger.py [--corpora ../shared/corpora]

Writes guardrails/data/person_tagger.crfsuite (shipped with the package) and prints
precision, recall and F1 for names on both halves: the tuning half (what it learned
from) and the held-out half (what to believe). Nothing of the held-out half is read
before the model is written. The halves are `guardrails.corpora.pii_halves`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guardrails.corpora import load_pii_corpus, pii_halves  # noqa: E402
from guardrails.entities import PERSON, Span  # noqa: E402
from guardrails.evaluation import score_pii  # noqa: E402
from guardrails.names import load_name_lists  # noqa: E402
from guardrails.person_tagger import PersonTagger, default_model_path, train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--model", type=Path, default=default_model_path())
    args = parser.parse_args()
    tuning, held_out = pii_halves(load_pii_corpus(args.corpora / "pii"))
    names = load_name_lists()
    started = time.perf_counter()
    samples = [(s.text, [(g.start, g.end) for g in s.spans if g.entity == PERSON]) for s in tuning]
    args.model.parent.mkdir(parents=True, exist_ok=True)
    train(samples, args.model, names)
    print(f"trained on {len(tuning)} texts in {time.perf_counter() - started:.0f} s: {args.model}")
    tagger = PersonTagger(args.model, names)

    def detect(text: str) -> list[Span]:
        return [Span(PERSON, n.start, n.end, n.score) for n in tagger.find(text)]

    for name, half in (("tuning half", tuning), ("held-out half", held_out)):
        counts = score_pii(detect, half)[PERSON]
        print(
            f"{name:<14} {len(half):>5} texts, {counts.gold:>5} names: precision "
            f"{counts.precision:.3f}, recall {counts.recall:.3f}, F1 {counts.f1:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
