"""Loss and accuracy curves as PNGs, written atomically (``data_modules.io.atomic``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from data_modules.io.atomic import atomic_path  # noqa: E402
from lightning_dl.numpy_mlp.training import TrainingStats  # noqa: E402


def _save_atomic(fig: plt.Figure, path: Path) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def _curve(title: str, ylabel: str, series: dict[str, list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_atomic(fig, path)


def save_curves(stats: TrainingStats, out_dir: Path) -> list[Path]:
    """Write loss_curve.png and accuracy_curve.png into out_dir; return their paths."""
    loss_path, acc_path = out_dir / "loss_curve.png", out_dir / "accuracy_curve.png"
    _curve(
        "Cross-entropy",
        "loss",
        {"train": stats.train_losses, "validation": stats.val_losses},
        loss_path,
    )
    _curve(
        "Accuracy",
        "accuracy",
        {
            "train": [1 - e for e in stats.train_errors],
            "validation": [1 - e for e in stats.val_errors],
        },
        acc_path,
    )
    return [loss_path, acc_path]
