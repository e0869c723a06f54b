"""``@needs_cuda``: a test that runs only with a CUDA device; ``pytest -m cuda`` selects them all
(``bench/gpu_check.py`` does, on the GPU machine)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def needs_cuda(test: Callable) -> Callable:
    skipped = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.cuda(skipped(test))
