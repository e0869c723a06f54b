"""The prepared GPU check: one command, under 8 minutes on one H200, a Markdown + JSON table.

    python bench/gpu_check.py --out $OUT --data .gpu_data          # on the GPU machine
    python bench/gpu_check.py --out /tmp/gpu_dry --dry-run         # here, on CPU: every path

Sections, each in its own process with its own time limit, the tables (``gpu_check.md``,
``gpu_check.json``) and every log and probe (``logs.tar.gz``) rewritten into ``--out`` after each,
so a cut-off run still reports what finished:

1. the machine: GPU, torch, bf16 support, what ``precision: auto`` resolves to;
2. the CUDA-only tests (``pytest -m cuda``);
3. ``wsj_mlp`` (+ ``configs/gpu/wsj_mlp.yaml``) on a generated Kaggle-format corpus of
   ``--frames`` frames, device-resident against memory-mapped: frames/s, GPU busy %, host syncs
   per quiet step (:mod:`bench.gpu_probe`);
4. ConvNet and ResNet-18 training img/s, bf16 against fp32 (``bench/vision_throughput.py``);
5. ``cifar10_fast`` (+ ``configs/gpu/cifar10_fast.yaml``) on the real CIFAR-10, converted from
   the JPEG archive in ``--data`` (copy ``../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz`` and
   ``../shared/tools/cifar10_from_jpeg.py`` there and ``carry`` it): test accuracy, seconds;
6. fp32 against bf16-mixed through the fit path on that CIFAR-10 (``bench/precision.py``):
   step time and test accuracy of ``cifar10_mlp`` and ``cifar10_fast`` in short paired runs,
   and whether ``precision: auto`` (bf16-mixed on this GPU) is the faster and as accurate.

The machine has no jsonargparse: carry its wheels (``.whl``, see the device README) and install
them first; wandb is not needed (every run here logs to no tracker). The device command, with
``carry: [".whl", ".gpu_data"]``::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; \
        PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT --data .gpu_data
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUIET = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


def _run(command: list[str], timeout: float, log: Path) -> tuple[int, str]:
    """Run ``command`` in the repo with PYTHONPATH set; (exit status, output), output to ``log``."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "disabled"}
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status = 124
        output = f"{expired.stdout or ''}{expired.stderr or ''}\n[timed out after {timeout} s]"
    log.write_text(" ".join(command) + "\n" + str(output))
    return status, str(output)


def machine() -> dict[str, Any]:
    import torch

    from lightning_dl.training.precision import resolve_precision

    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name()
        info["bf16"] = torch.cuda.is_bf16_supported(including_emulation=False)
        info["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    info["precision_auto"] = resolve_precision("auto", "auto")
    return info


def cuda_tests(out: Path, timeout: float) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "-o",
        "addopts=",
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        "tests",
    ]
    status, output = _run(command, timeout, out / "cuda_tests.log")
    last = output.strip().splitlines()[-1] if output.strip() else ""
    counted = re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", last)
    return {"exit": status, **{word: int(n) for n, word in counted}}


def wsj(out: Path, frames: int, steps: dict[str, int], timeout: float, dry: bool) -> dict:
    from bench.wsj_loader import make_corpus

    data = Path(tempfile.mkdtemp(prefix="gpu_check_wsj_"))
    started = time.perf_counter()
    make_corpus(data, frames)
    result: dict[str, Any] = {"frames": frames, "corpus_s": round(time.perf_counter() - started, 1)}
    for resident in ("true", "false"):
        probe = out / f"wsj_probe_{resident}.json"
        command = [
            sys.executable,
            "-m",
            "lightning_dl.fit",
            "--config",
            "configs/wsj_mlp.yaml",
            "--config",
            "configs/gpu/wsj_mlp.yaml",
            *QUIET,
            "--data.data_dir",
            str(data),
            "--data.source",
            "kaggle",
            "--data.resident",
            resident,
            "--data.num_workers",
            "0" if resident == "true" else str(min(8, os.cpu_count() or 1)),
            "--trainer.max_epochs",
            "-1",
            "--trainer.max_steps",
            str(steps["max"]),
            "--trainer.limit_val_batches",
            "3",
            "--trainer.limit_test_batches",
            "3",
            "--run.dir",
            str(data / f"run_{resident}"),
            "--trainer.callbacks+=bench.gpu_probe.GpuProbe",
            "--trainer.callbacks.out",
            str(probe),
            "--trainer.callbacks.warmup",
            str(steps["warmup"]),
            "--trainer.callbacks.window",
            str(steps["window"]),
        ]
        if dry:
            command += ["--data.batch_size", "1024", "--trainer.accelerator", "cpu"]
        status, _ = _run(command, timeout, out / f"wsj_{resident}.log")
        key = "resident" if resident == "true" else "memmap"
        result[key] = {"exit": status, **(json.loads(probe.read_text()) if probe.is_file() else {})}
    if result["resident"].get("samples_per_s") and result["memmap"].get("samples_per_s"):
        result["resident_over_memmap"] = (
            result["resident"]["samples_per_s"] / result["memmap"]["samples_per_s"]
        )
    return result


def vision(out: Path, timeout: float, dry: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        "bench/vision_throughput.py",
        "--models",
        "convnet",
        "resnet18",
        "--settings",
        "fp32+cl",
        "bf16+cl",
    ]
    command += (
        ["--batch-sizes", "8", "--warmup", "1", "--steps", "2", "--device", "cpu"]
        if dry
        else ["--batch-sizes", "256", "--warmup", "5", "--steps", "20", "--device", "cuda"]
    )
    status, output = _run(command, timeout, out / "vision.log")
    rows = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] in ("convnet", "resnet18") and fields[1].isdigit():
            rows[f"{fields[0]} {fields[2]}"] = {
                "plain": float(fields[3]),
                "lightning": float(fields[4]),
            }
    return {
        "exit": status,
        "img_per_s": rows,
        "auto": [line for line in output.splitlines() if line.startswith("precision auto")],
    }


CIFAR_WORK = Path(tempfile.mkdtemp(prefix="gpu_check_cifar_"))  # the converted CIFAR-10, shared


def cifar10_fast(out: Path, data: Path, timeout: float, dry: bool) -> dict[str, Any]:
    archive, tool = data / "cifar10-jpeg.tar.gz", data / "cifar10_from_jpeg.py"
    if not (archive.is_file() and tool.is_file()):
        return {"skipped": f"no {archive.name} and {tool.name} in {data}"}
    work = CIFAR_WORK
    # the converter reads ../data/cifar10-jpeg/ beside its own folder, as in ../shared
    (work / "tools").mkdir()
    (work / "data" / "cifar10-jpeg").mkdir(parents=True)
    shutil.copy(tool, work / "tools" / tool.name)
    (work / "data" / "cifar10-jpeg" / archive.name).symlink_to(archive.resolve())
    tool = work / "tools" / tool.name
    started = time.perf_counter()
    status, _ = _run(
        [sys.executable, str(tool), str(work / "cifar10")], timeout / 3, out / "cifar_convert.log"
    )
    converted = time.perf_counter()
    if status:
        return {"exit": status, "error": "conversion failed, see cifar_convert.log"}
    (work / "converted").touch()  # the precision section trains on it too
    probe, run_dir = out / "cifar_probe.json", work / "run"
    command = [
        sys.executable,
        "-m",
        "lightning_dl.fit",
        "--config",
        "configs/cifar10_fast.yaml",
        "--config",
        "configs/gpu/cifar10_fast.yaml",
        *QUIET,
        "--data.data_dir",
        str(work / "cifar10"),
        "--run.dir",
        str(run_dir),
        "--trainer.callbacks+=bench.gpu_probe.GpuProbe",
        "--trainer.callbacks.out",
        str(probe),
        "--trainer.callbacks.warmup",
        "20",
        "--trainer.callbacks.window",
        "40",
    ]
    if dry:
        command += [
            "--trainer.max_steps",
            "6",
            "--trainer.accelerator",
            "cpu",
            "--data.batch_size",
            "64",
            "--trainer.callbacks.warmup",
            "1",
            "--trainer.callbacks.window",
            "2",
        ]
    status, _ = _run(command, timeout, out / "cifar_fit.log")
    summary = json.loads((run_dir / "summary.json").read_text()) if run_dir.exists() else {}
    probe_data = json.loads(probe.read_text()) if probe.is_file() else {}
    return {
        "exit": status,
        "convert_s": round(converted - started, 1),
        "test_acc": summary.get("test/acc"),
        "precision": summary.get("precision"),
        "train_s": probe_data.get("train_s"),
        "fit_and_test_s": summary.get("wall_time_s"),
        "gpu_busy": probe_data.get("gpu_busy"),
    }


def precision(out: Path, timeout: float, dry: bool) -> dict[str, Any]:
    data = CIFAR_WORK / "cifar10"
    if not (CIFAR_WORK / "converted").is_file():
        return {"skipped": "no converted CIFAR-10 (the cifar10_fast section did not convert it)"}
    configs = ["cifar10_mlp", "cifar10_fast"]
    command = [sys.executable, "bench/precision.py", "--configs", *configs, "--steps"]
    command += ["4", "--no-accuracy"] if dry else ["300"]
    command += ["--data", *(f"{config}={data}" for config in configs)]
    status, output = _run(command, timeout, out / "precision.log")
    lines = output.splitlines()
    header = max((i for i, line in enumerate(lines) if line.startswith("| config |")), default=None)
    rows = [line for line in lines[header:] if line.startswith("|")] if header is not None else []
    return {"exit": status, "rows": rows}  # the bench's final table, header included


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "-" if value is None else str(value)


def write_tables(out: Path, results: dict[str, Any]) -> None:
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    lines = [f"# GPU check, {time.strftime('%Y-%m-%d %H:%M')}", ""]
    lines += [f"- {key}: {_fmt(value)}" for key, value in results.get("machine", {}).items()]
    if "cuda_tests" in results:
        lines += ["", f"CUDA-only tests: {json.dumps(results['cuda_tests'])}"]
    if "wsj" in results:
        w = results["wsj"]
        lines += [
            "",
            f"wsj_mlp + configs/gpu/wsj_mlp.yaml, {w['frames']:,} frames:",
            "",
            "| loader | frames/s | step ms | GPU busy | syncs / quiet step | exit |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for key in ("resident", "memmap"):
            r = w.get(key, {})
            lines.append(
                f"| {key} | {_fmt(r.get('samples_per_s'))} | {_fmt(r.get('step_ms'))} | "
                f"{_fmt(r.get('gpu_busy'))} | {_fmt(r.get('syncs_per_quiet_step'))} | "
                f"{r.get('exit')} |"
            )
        lines.append(f"\nresident / memmap: {_fmt(w.get('resident_over_memmap'))}")
    if "vision" in results:
        lines += ["", "| model setting | plain img/s | Lightning img/s |", "| --- | --- | --- |"]
        for name, r in results["vision"].get("img_per_s", {}).items():
            lines.append(f"| {name} | {_fmt(r['plain'])} | {_fmt(r['lightning'])} |")
        lines += results["vision"].get("auto", [])
    if "cifar10_fast" in results:
        lines += [
            "",
            f"cifar10_fast + configs/gpu/cifar10_fast.yaml: {json.dumps(results['cifar10_fast'])}",
        ]
    if "precision" in results:
        r = results["precision"]
        lines += ["", "fp32 vs bf16-mixed (bench/precision.py):", ""]
        lines += r.get("rows", []) or [f"{json.dumps(r)}"]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def bundle_logs(work: Path, out: Path) -> None:
    """Every log and probe in one archive: the device returns at most 8 files from $OUT."""
    with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
        for path in sorted(work.iterdir()):
            archive.add(path, arcname=path.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--data", type=Path, default=ROOT / ".gpu_data")
    parser.add_argument("--frames", type=int, default=5_000_000)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check the paths")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_logs_"))  # logs and probes; bundled into out
    dry = args.dry_run
    frames = 60_000 if dry else args.frames
    steps = (
        {"warmup": 2, "window": 3, "max": 10} if dry else {"warmup": 20, "window": 50, "max": 125}
    )
    results: dict[str, Any] = {"machine": machine()}
    write_tables(args.out, results)
    sections = [
        ("cuda_tests", lambda: cuda_tests(work, 150)),
        ("wsj", lambda: wsj(work, frames, steps, 150, dry)),
        ("vision", lambda: vision(work, 90, dry)),
        ("cifar10_fast", lambda: cifar10_fast(work, args.data, 200, dry)),
        ("precision", lambda: precision(work, 75, dry)),
    ]
    for name, section in sections:
        started = time.perf_counter()
        try:
            results[name] = section()
        except Exception as error:  # a broken section must not hide the others
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["section_s"] = round(time.perf_counter() - started, 1)
        write_tables(args.out, results)
        bundle_logs(work, args.out)
        print(f"[gpu_check] {name}: {results[name]}", flush=True)
    print((args.out / "gpu_check.md").read_text())


if __name__ == "__main__":
    main()
