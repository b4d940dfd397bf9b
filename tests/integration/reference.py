"""The exact references the engines' analytics are held to."""

from __future__ import annotations

import numpy as np


def zscore_reference(bids: np.ndarray, w: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling mean, two-pass population std and flat-window flags over the last `w` bids
    (fewer during warm-up), in numpy double precision, one window at a time."""
    n = len(bids)
    mean, std, flat = np.empty(n), np.empty(n), np.empty(n, dtype=bool)
    for i in range(n):
        win = bids[max(0, i - w + 1) : i + 1]
        m = win.sum() / len(win)
        mean[i] = m
        std[i] = np.sqrt(((win - m) ** 2).sum() / len(win))  # two-pass, population
        flat[i] = win.min() == win.max()
    return mean, std, flat
