"""Keyframe reduction with a bound on the error. No bpy.

Keys are linearly interpolated, so a kept subset of samples reproduces every dropped sample to
within ``tolerance`` when the linear interpolation between kept neighbours does. `reduce_keys`
finds such a subset by recursive splitting at the worst sample (Ramer–Douglas–Peucker on the
vertical distance), starting from the end points and any frames the caller must keep — the lip
closures (`closure_frames`), so a /p b m/ seal stays exactly where the model put it.
"""

import numpy as np

__all__ = ["reduce_keys", "closure_frames", "MOUTH_OPENING", "MOUTH_CLOSING"]

# Coefficients whose sum measures how open the lips are, and those that close them.
MOUTH_OPENING = ("jawOpen", "mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight",
                 "mouthUpperUpLeft", "mouthUpperUpRight")
MOUTH_CLOSING = ("mouthClose", "mouthPressLeft", "mouthPressRight")


def reduce_keys(values: np.ndarray, tolerance: float, keep: np.ndarray | None = None) -> np.ndarray:
    """Indices of the samples to key so that linear interpolation deviates at most ``tolerance``.

    Shapes: values (T,), keep (K,) sample indices always kept -> sorted indices (N,), N <= T.
    A tolerance <= 0 keeps every sample.
    """
    values = np.asarray(values, dtype=np.float64)
    count = len(values)
    if tolerance <= 0 or count <= 2:
        return np.arange(count)
    kept = np.zeros(count, dtype=bool)
    kept[[0, count - 1]] = True
    if keep is not None:
        kept[np.asarray(keep, dtype=np.int64)] = True
    anchors = np.flatnonzero(kept)
    spans = list(zip(anchors[:-1], anchors[1:]))
    while spans:
        lo, hi = spans.pop()
        if hi - lo < 2:
            continue
        inner = np.arange(lo + 1, hi)
        line = values[lo] + (values[hi] - values[lo]) * (inner - lo) / (hi - lo)
        error = np.abs(values[inner] - line)
        worst = int(np.argmax(error))
        if error[worst] > tolerance:
            split = int(inner[worst])
            kept[split] = True
            spans.extend([(lo, split), (split, hi)])
    return np.flatnonzero(kept)


def _local_minima(signal: np.ndarray) -> np.ndarray:
    """Indices of the interior samples not above either neighbour and below at least one."""
    left, mid, right = signal[:-2], signal[1:-1], signal[2:]
    return np.flatnonzero((mid <= left) & (mid <= right) & ((mid < left) | (mid < right))) + 1


def closure_frames(exp: np.ndarray, names: list[str]) -> np.ndarray:
    """Frames where the lips close: local minima of (opening - closing) coefficients.

    Shapes: exp (T, D), names (D,) -> frame indices (K,). Empty when the model has none of the
    mouth coefficients.
    """
    exp = np.asarray(exp, dtype=np.float64)
    opening = [names.index(n) for n in MOUTH_OPENING if n in names]
    closing = [names.index(n) for n in MOUTH_CLOSING if n in names]
    if (not opening and not closing) or len(exp) < 3:
        return np.zeros(0, dtype=np.int64)
    aperture = exp[:, opening].sum(axis=1) - exp[:, closing].sum(axis=1)
    return _local_minima(aperture)
