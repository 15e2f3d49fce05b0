"""Comparison helpers for the golden tests: errors relative to each reference array's largest magnitude."""
from __future__ import annotations

from typing import Mapping

import numpy as np


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """max |got - expected| / max |expected| (the absolute error when the reference is all zero)."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"shape {got.shape} differs from the reference {expected.shape}")
    scale = np.abs(expected).max() if expected.size else 0.0
    diff = np.abs(got - expected).max() if expected.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def assert_all_close(got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
                     tolerance: float, what: str) -> dict[str, float]:
    """Every reference array within ``tolerance`` (relative); the message names the worst ones."""
    errors = {}
    for name, reference in expected.items():
        if name not in got:
            raise AssertionError(f"{what}: {name!r} missing (have {sorted(got)})")
        try:
            errors[name] = relative_error(got[name], reference)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {name!r}: {exc}") from None
    failing = sorted((e, n) for n, e in errors.items() if not e <= tolerance)[::-1]
    worst = max(errors, key=errors.get) if errors else None
    assert not failing, (f"{what}: {len(failing)} of {len(errors)} arrays exceed {tolerance:g}; "
                         f"worst: " + ", ".join(f"{n} {e:.3g}" for e, n in failing[:5]))
    if worst is not None:
        print(f"{what}: worst {worst} {errors[worst]:.2e}")
    return errors


def npz_group(npz, prefix: str) -> dict[str, np.ndarray]:
    """The arrays of a golden ``.npz`` whose keys start with ``prefix``, keyed by the rest."""
    return {key[len(prefix):]: npz[key] for key in npz.files if key.startswith(prefix)}
