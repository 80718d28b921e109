"""`pip install ARGS` that says what it is doing, for `make setup` (and so `make run`).

pip's own output is hundreds of lines, and `--quiet` is minutes of silence: this runs pip,
keeps its output, and prints one short line when it moves from finding and downloading packages
to installing them, and one every `UPDATE_EVERY` seconds in between, with how many packages
and how long so far. If pip fails, its output ends with the real error.

    .venv/bin/python scripts/pip_install.py -e '.[dev]'
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import deque

UPDATE_EVERY = 20.0  # seconds between progress lines within one phase
TAIL_LINES = 40  # lines of pip's output shown when it fails
COLLECTING = "finding and downloading packages"
# pip prints this once it has every package and starts unpacking them into .venv.
INSTALLING_LINE = "Installing collected packages"
INSTALLING = "installing them into .venv (the longest step: torch and transformers are large)"


def main(args: list[str]) -> int:
    started = time.monotonic()
    command = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *args]
    pip = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert pip.stdout is not None
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    phase, collected, last_said = "", 0, 0.0
    for line in pip.stdout:
        tail.append(line)
        collected += line.startswith(("Collecting ", "Requirement already satisfied"))
        now_phase = (
            INSTALLING if line.startswith(INSTALLING_LINE) or phase == INSTALLING else COLLECTING
        )
        elapsed = time.monotonic() - started
        if now_phase != phase or elapsed - last_said >= UPDATE_EVERY:
            phase, last_said = now_phase, elapsed
            print(f"  pip: {phase}, {collected} packages so far ({_clock(elapsed)})", flush=True)
    code = pip.wait()
    elapsed = time.monotonic() - started
    if code != 0:
        sys.stdout.writelines(tail)
        print(f"  pip install failed after {_clock(elapsed)} (exit {code}); its output is above")
        return code
    print(f"  pip: done in {_clock(elapsed)}", flush=True)
    return 0


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
