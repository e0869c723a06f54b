"""Reading and checking a torchvision-format state_dict file before a strict load.

``load_state_dict`` reports every mismatch in one long message; here the file is checked first
so the error names the file and the first few missing, unexpected and wrongly-shaped entries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch

SHOW = 5  # mismatches listed per kind


def _first(items: Sequence[str]) -> str:
    more = f" ... (+{len(items) - SHOW} more)" if len(items) > SHOW else ""
    return ", ".join(items[:SHOW]) + more


def read_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    """torch.load a plain state_dict (tensors only, ``weights_only``) from ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise ValueError(f"{path}: not a readable torch state_dict file ({e})") from e
    if not isinstance(state, Mapping):
        kind = type(state).__name__
        raise ValueError(f"{path}: expected a state_dict (name -> tensor), got {kind}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {_first([str(k) for k in bad])}")
    return dict(state)


def load_torchvision_state_dict(
    path: str,
    expected: Mapping[str, torch.Tensor],
    *,
    skip: Sequence[str] = (),
    head: str = "fc",
) -> dict[str, torch.Tensor]:
    """The file's tensors, checked against ``expected`` keys and shapes.

    The head (``{head}.weight``/``{head}.bias``) may have any number of classes: it is replaced
    after loading. Keys in ``skip`` must exist but their shapes are not checked. Missing
    ``num_batches_tracked`` buffers (files saved before PyTorch 0.4.1, like torchvision's original
    ImageNet weights) are filled with 0, as ``BatchNorm`` itself does for such files.
    """
    state = read_state_dict_file(path)
    n_file = len(state)
    for k, v in expected.items():
        stats = k.replace("num_batches_tracked", "running_mean")
        if k.endswith("num_batches_tracked") and k not in state and stats in state:
            state[k] = torch.zeros_like(v)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = []
    for k in expected:
        if k not in state or k in skip:
            continue
        got, want = tuple(state[k].shape), tuple(expected[k].shape)
        if k == f"{head}.weight":
            ok = len(got) == 2 and got[1] == want[1]
            want_s = f"(num_classes, {want[1]})"
        elif k == f"{head}.bias":
            w = state.get(f"{head}.weight")
            ok = w is not None and got == (w.shape[0],)
            want_s = "(num_classes,) matching the head weight"
        else:
            ok, want_s = got == want, str(want)
        if not ok:
            wrong.append(f"{k}: file {got}, model {want_s}")
    if missing or unexpected or wrong:
        lines = [
            f"{path}: does not match a torchvision resnet18 state_dict "
            f"({len(expected)} entries expected, file has {n_file})"
        ]
        if missing:
            lines.append(f"  missing {len(missing)}: {_first(missing)}")
        if unexpected:
            lines.append(f"  unexpected {len(unexpected)}: {_first(unexpected)}")
        if wrong:
            lines.append(f"  wrong shape {len(wrong)}: {_first(wrong)}")
        raise ValueError("\n".join(lines))
    return state
