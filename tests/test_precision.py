"""``precision: auto``: bf16-mixed only where the hardware computes bf16 natively."""

from __future__ import annotations

import pytest
import torch

from data_modules.errors import UserInputError
from lightning_dl.training import precision
from lightning_dl.training.precision import Trainer, cpu_has_native_bf16, resolve_precision
from tests.helpers.cuda import needs_cuda

X86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n"


@pytest.mark.parametrize(
    ("flags", "native"),
    [("", False), ("avx512_bf16", True), ("amx_tile amx_bf16", True), ("avx512_vnni", False)],
)
def test_cpu_bf16_from_the_cpu_flags(tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(X86.format(extra=flags))
    assert cpu_has_native_bf16(info) is native


def test_arm_bf16_feature_counts_and_an_unreadable_cpuinfo_does_not(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert cpu_has_native_bf16(info)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_auto_follows_the_cpu_and_explicit_choices_are_kept(monkeypatch):
    monkeypatch.delenv(precision.FORCE_ENV, raising=False)  # a suite run as the other host kind
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32-true"
    for explicit in ("bf16-mixed", "16-mixed", "32-true", 32, None):
        assert resolve_precision(explicit, "cpu") == explicit


def test_auto_can_be_forced_to_either_kind_of_host(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setenv(precision.FORCE_ENV, "32-true")
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # explicit choices still win
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setenv(precision.FORCE_ENV, "bf16-mixed")
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setenv(precision.FORCE_ENV, "fp16")
    with pytest.raises(UserInputError, match="LIGHTNING_DL_AUTO_PRECISION='fp16': expected"):
        resolve_precision("auto", "cpu")


@needs_cuda
def test_auto_on_cuda_is_bf16_where_the_gpu_has_it():
    expected = (
        "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "32-true"
    )
    assert resolve_precision("auto", "gpu") == expected


def test_the_trainer_runs_the_resolved_precision():
    trainer = Trainer(precision="auto", accelerator="cpu", logger=False, enable_progress_bar=False)
    assert trainer.precision == resolve_precision("auto", "cpu")
