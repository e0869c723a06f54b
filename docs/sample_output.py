"""Regenerate the sample console output in docs/configuration.md from a real run.

A sample kept by hand goes stale the day the console changes; this runs the command, replaces
the checkout's path with /path/to/lightning-dl and writes the block between the markers.
tests/test_docs.py compares the block's shape (its kinds of line) with a short real run.

    python docs/sample_output.py             # the quickstart, as the README runs it
    python docs/sample_output.py -- ARGS     # with more fit arguments, e.g. to try a change
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"
BEGIN, END = "<!-- sample-output:begin -->", "<!-- sample-output:end -->"
COMMAND = [sys.executable, "-m", "lightning_dl.fit", "--config", "configs/quickstart.yaml"]
# Progress lines vary in number with the host's speed; everything else is one line of one kind.
PROGRESS = ("train step", "val   step")


def run(extra: list[str]) -> str:
    """The command's output as a file sees it (stdout and stderr merged, not a terminal), with
    the checkout's path made generic."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    out = subprocess.run(
        [*COMMAND, *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"error: the run failed (exit {out.returncode}):\n{out.stdout}")
    return out.stdout.replace(str(ROOT), "/path/to/lightning-dl")


def shape(text: str) -> list[str]:
    """Each line's kind: its first word, and the second unless it holds a figure or a path. A
    run of progress lines counts once: their number depends on how fast the host is."""
    kinds: list[str] = []
    for line in text.strip("\n").splitlines():
        words = line.split()[:2]
        if len(words) == 2 and re.search(r"[\d/]", words[1]):
            words = words[:1]
        kind = "progress" if line.startswith(PROGRESS) else " ".join(words)
        if not (kind == "progress" and kinds and kinds[-1] == "progress"):
            kinds.append(kind)
    return kinds


def block(page: Path = PAGE) -> str:
    """The sample as the page holds it (inside the markers' text fence)."""
    inner = page.read_text().split(BEGIN, 1)[1].split(END, 1)[0]
    return inner.strip("\n").removeprefix("```text").removesuffix("```").strip("\n")


def write(sample: str, page: Path = PAGE) -> None:
    """Replace the block between the markers, atomically (temp file, then rename)."""
    head, rest = page.read_text().split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    tmp = page.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{BEGIN}\n```text\n{sample.strip()}\n```\n{END}{tail}")
    tmp.replace(page)


if __name__ == "__main__":
    extra = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    write(run(extra))
    print(f"wrote the sample into {PAGE.relative_to(ROOT)}")
