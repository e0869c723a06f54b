"""erf for NumPy arrays, which the exact GELU needs (NumPy has none, SciPy is no dependency).

Two Chebyshev interpolants, fitted once at import against the standard library's math.erf and
math.erfc: erf(x) = x * P(x^2) for |x| < 2, and erf(x) = 1 - exp(-x^2) * Q(x) for 2 <= x < 6,
where exp(x^2) * erfc(x) is smooth and slowly varying. From 6 on, erf(x) is 1 in float64
(erfc(6) = 2e-17). The absolute error is below 1e-14 everywhere (tested against math.erf).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import Chebyshev

_SMALL, _LARGE = 2.0, 6.0


def _erf_over_root(u: np.ndarray) -> np.ndarray:
    """erf(sqrt(u)) / sqrt(u), which tends to 2 / sqrt(pi) at u = 0."""
    return np.array([math.erf(r) / r if r > 0 else 2 / math.sqrt(math.pi) for r in np.sqrt(u)])


def _scaled_erfc(x: np.ndarray) -> np.ndarray:
    return np.array([math.exp(v * v) * math.erfc(v) for v in x])


_P = Chebyshev.interpolate(_erf_over_root, 18, domain=[0.0, _SMALL * _SMALL])
_Q = Chebyshev.interpolate(_scaled_erfc, 22, domain=[_SMALL, _LARGE])


def erf(x: np.ndarray) -> np.ndarray:
    """Element-wise error function; float64 inside, returned in ``x``'s floating dtype."""
    x = np.asarray(x)
    wide = x.astype(np.float64)
    size = np.abs(wide)
    out = np.sign(wide)  # erf(+-inf) = +-1, NaN stays NaN
    small = size < _SMALL
    out[small] = wide[small] * _P(wide[small] ** 2)
    mid = ~small & (size < _LARGE)
    out[mid] *= 1.0 - np.exp(-(size[mid] ** 2)) * _Q(size[mid])
    return out.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else out
