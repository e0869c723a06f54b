"""The README and docs/ as a manual: a short front page, pages that link up, examples that run
as pasted, and a sample console output that matches what a run prints today."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MANUAL = [README, *PAGES]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
FENCED = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
sys.path.insert(0, str(ROOT / "docs"))
import sample_output  # noqa: E402


def prose(path: Path) -> str:
    return FENCE.sub("", path.read_text())


def code_blocks(path: Path, lang: str = "bash") -> list[str]:
    """The bodies of the fenced blocks in ``lang`` ("" for a fence without one)."""
    return [body for kind, body in FENCED.findall(path.read_text()) if kind == lang]


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, no punctuation, spaces to hyphens, repeats numbered."""
    seen: Counter[str] = Counter()
    ids = set()
    for heading in re.findall(r"^#+ (.+)$", prose(path), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        ids.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return ids


def test_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    assert [n for n, line in enumerate(lines, 1) if len(line) > 300] == []
    top = "\n".join(lines[:60])
    for command in ("python -m lightning_dl.fit --config configs/quickstart.yaml",
                    "python kaggle/predict.py", "pytest -n auto"):  # fmt: skip
        assert command in top, command


def test_readme_tables_every_recipe_and_shows_the_layout():
    text = README.read_text()
    rows = re.findall(r"^\| `([\w.]+\.yaml)` \|", text, re.M)
    assert sorted(rows) == sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    tree = next(block for block in code_blocks(README, "") if "lightning_dl/" in block)
    for folder in ("lightning_dl", "data_modules", "configs", "bench", "docs", "kaggle", "tests"):
        assert re.search(rf"^{folder}[/.]", tree, re.M), folder


def test_enough_pages_and_the_readme_links_each():
    assert len(PAGES) >= 6
    linked = {(ROOT / link.split("#")[0]).resolve() for link in LINK.findall(prose(README))}
    assert [p.name for p in PAGES if p.resolve() not in linked] == []


@pytest.mark.parametrize("path", MANUAL, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(path):
    for link in LINK.findall(prose(path)):
        if re.match(r"[a-z]+:", link):
            continue  # a URL
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.exists(), f"{path.name}: {link}"
        if anchor:
            assert anchor in anchors(file), f"{path.name}: {link}"


@pytest.mark.parametrize("path", MANUAL, ids=lambda p: p.name)
def test_a_manual_not_a_diary(path):
    text = path.read_text()
    assert "session" not in text.lower()
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "a date"
    assert not re.search(r"\bissue[ -]?\d+", text, re.I), "an issue number"
    assert [len(line) for line in text.splitlines() if len(line) > 1000] == []


@pytest.mark.parametrize("path", MANUAL, ids=lambda p: p.name)
def test_examples_have_no_placeholders(path):
    for block in code_blocks(path):
        for placeholder in ("...", "DATA", "RUN/", "X.yaml", "DIR "):
            assert placeholder not in block, f"{path.name}: {placeholder!r} in\n{block}"


def test_task_pages_say_how_to_make_a_short_run_and_the_common_overrides():
    short = {"vision": "--trainer.max_steps 60", "speech-frames": "--trainer.max_steps 60",
             "speech-ctc": "--trainer.max_steps 60", "numpy-backprop": "--steps 60"}  # fmt: skip
    for page, flag in short.items():
        assert flag in (ROOT / "docs" / f"{page}.md").read_text(), page
    for page in ("configuration", "speech-frames"):
        text = (ROOT / "docs" / f"{page}.md").read_text()
        assert "--model.backbone.init_args.hidden [256,128]" in text, page
        assert "--data.context 12" in text, page
    sweeps = (ROOT / "docs" / "sweeps-and-comparing.md").read_text()
    assert "lightning_dl.sweep --config configs/synthetic_mlp.yaml" in sweeps


def test_the_sample_output_has_the_shape_of_a_real_run(tmp_path):
    """A short quickstart on a tiny demo corpus, in the precision the sample shows, prints the
    same kinds of line in the same order (figures, paths and the number of progress lines aside)."""
    pytest.importorskip("espeakng_loader")
    sample = sample_output.block()
    assert "run directory: runs/quickstart/" in sample  # the quickstart, as the README runs it
    precision = re.search(r"^precision: (\S+)$", sample, re.M).group(1)
    out = sample_output.run(
        ["--trainer.precision", precision, "--data.data_dir", str(tmp_path / "demo"),
         "--data.demo_utterances", "12", "--data.demo_workers", "1",
         "--trainer.max_steps", "20", "--trainer.val_check_interval", "10",
         "--trainer.log_every_n_steps", "5", "--run.root", str(tmp_path / "runs")]
    )  # fmt: skip
    assert sample_output.shape(out) == sample_output.shape(sample), out
