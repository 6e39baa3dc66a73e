"""The feature math for whole stacks of windows: `(k, window)` arrays in, `(k, 8)` array out.

Why top-level functions on plain arrays: this runs in a process pool, so what crosses the
boundary must pickle small and fast (two float arrays there, one back) and the function must be
importable by name in a fresh worker. Vectorised over all the windows one batch completed, so a
pool submission is one call, whatever k is.
"""

from __future__ import annotations

import os

import numpy as np

from daemon.batch import FloatArray

FEATURE_NAMES = ("mean", "std", "min", "max", "slope", "p95", "dominant_hz", "anomaly_score")
"""Column order of `compute`'s result, which is also the record's key order."""


def compute(values: FloatArray, ts: FloatArray) -> FloatArray:
    """Features of each row of `values` (readings) and `ts` (their epoch seconds).

    A window whose values are all equal has mean = that value and std 0.0 exactly (not float
    noise), so its `slope`, `anomaly_score` and `dominant_hz` are 0.0; `slope` is also 0.0 when
    all its ts are equal, and `dominant_hz` when its ts do not advance.
    """
    k, w = values.shape
    if w < 2:
        raise ValueError(f"a feature window needs >= 2 readings, got {w}")
    out = np.zeros((k, len(FEATURE_NAMES)), dtype=np.float64)
    if k == 0:
        return out
    vmin = values.min(axis=1)
    vmax = values.max(axis=1)
    varies = vmax > vmin
    # A constant window's mean is its value exactly, so every deviation is exactly 0.
    mean = np.where(varies, values.mean(axis=1), vmin)
    dev = values - mean[:, None]
    std = np.sqrt(np.mean(dev * dev, axis=1))

    t_dev = ts - ts.mean(axis=1)[:, None]  # centred first: epoch seconds squared lose digits
    sxx = np.einsum("ij,ij->i", t_dev, t_dev)
    sxy = np.einsum("ij,ij->i", t_dev, dev)
    slope = np.divide(sxy, sxx, out=np.zeros(k), where=sxx > 0)

    p95 = np.percentile(values, 95, axis=1)  # numpy's default: linear interpolation

    # The largest non-DC bin of the real FFT, at the window's mean sampling interval.
    spacing = (ts[:, -1] - ts[:, 0]) / (w - 1)
    peak_bin = np.argmax(np.abs(np.fft.rfft(values, axis=1))[:, 1:], axis=1) + 1
    defined = varies & (spacing > 0) & np.isfinite(spacing)
    hz = np.divide(peak_bin, w * spacing, out=np.zeros(k), where=defined)

    anomaly = np.divide(np.abs(dev).max(axis=1), std, out=np.zeros(k), where=std > 0)

    for col, feature in enumerate((mean, std, vmin, vmax, slope, p95, hz, anomaly)):
        out[:, col] = feature
    out += 0.0  # -0.0 (a slope of exactly nothing downwards) is 0.0 on the wire
    return out


def warm_up(window: int) -> int:
    """Run `compute` once in a fresh worker (imports, FFT plans) and return the worker's pid."""
    rows = np.arange(2 * window, dtype=np.float64).reshape(2, window)
    compute(rows, rows)
    return os.getpid()
