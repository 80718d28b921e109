"""What every benchmark script in `bench/` shares: `--smoke`, the report, its verdicts.

The convention (`bench/run_all.py` holds every script to it, and `make test` runs them
all with `--smoke`):

* `parser(description)` is the script's argparse parser, with `--smoke` already on it. A
  smoke run takes a few seconds and goes through the same real path as the full run
  (the real servers, sockets, database and queue) with tiny sizes, so a benchmark that
  no longer runs fails CI. Its figures mean nothing, so its aims are printed but not
  judged; its correctness checks (nothing lost, exactly once) are judged in both modes.
* `Report(name, title, smoke)` starts the output with the date and the machine's load
  average, taken before the script starts anything. `aim(ok, text)` adds a PASS or MISS
  line for a figure against its aim; `check(ok, text)` adds a PASS or FAIL line for a
  correctness check, and any FAIL makes the script exit with status 1.
* `report.finish()` adds the load average at the end and the run's length, prints the
  report and, for a full run only, keeps it in `bench/results/<name>.txt` (the README's
  benchmark table is read from those files). It returns the exit status.
* Databases: a script creates its own database on `BENCH_DATABASE_URL`'s server when
  that is set (the runner sets it, so one embedded Postgres serves all the scripts), else
  on an embedded server of its own; Redis is `BENCH_REDIS_URL`, default
  `redis://127.0.0.1:6379/14`, under a namespace of its own.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SMOKE_HELP = "a few seconds through the same real path, tiny sizes; figures not judged"


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the `--smoke` flag every benchmark takes."""
    made = argparse.ArgumentParser(description=description)
    made.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    return made


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class Report:
    """The output of one benchmark run, with its verdicts."""

    name: str  # bench/results/<name>.txt
    title: str
    smoke: bool
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        mode = " (SMOKE RUN: tiny sizes, figures not judged)" if self.smoke else ""
        self.lines += [
            f"chatops-agent {self.title}, {now()}{mode}",
            f"machine: {os.cpu_count()} cores ({platform.system()} {platform.machine()}),"
            f" load avg at start {load_average()}, Python {platform.python_version()}",
        ]

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def aim(self, ok: bool, text: str) -> None:
        """A figure against its aim: PASS or MISS (not judged in a smoke run)."""
        verdict = "PASS" if ok else "MISS"
        self.lines.append(
            f"{verdict}  {text}" + ("  (smoke run: not judged)" if self.smoke else "")
        )

    def check(self, ok: bool, text: str) -> None:
        """A correctness check: PASS, or FAIL and the run exits with status 1."""
        self.lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")
        if not ok:
            self.failures.append(text)

    def finish(self) -> int:
        self.lines.append(
            f"(whole run {time.monotonic() - self.started:.0f} s; load avg at end {load_average()})"
        )
        text = "\n".join(self.lines) + "\n"
        print(text, end="", flush=True)
        if not self.smoke:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"{self.name}.txt").write_text(text)
        if self.failures:
            print(f"{len(self.failures)} check(s) failed", file=sys.stderr)
            return 1
        return 0
