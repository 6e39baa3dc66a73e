"""Counter-based random numbers: draw `n` of stream `key` is a pure function of `(key, n)`.

Why not one `numpy.random.Generator` per sensor: a stateful generator is only deterministic if
it is drawn in the same chunks, and it can only draw for one sensor per call. The simulated
source generates whole multi-sensor batches in one numpy pass (10,000 sensors at 10 Hz would
otherwise pay a dozen tiny numpy calls per sensor per tick). A counter-based stream (SplitMix64:
`mix64(key + (n + 1) * GOLDEN)`) gives every (sensor, purpose) its own independent stream that
can be indexed by `seq` for any rows of any sensors at once, identically however the rows are
chunked, and needs no state to carry across a reload: the position in the stream is the `seq`.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

_MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_GOLDEN_U = np.uint64(GOLDEN)
_C1_U = np.uint64(_C1)
_C2_U = np.uint64(_C2)
_TWO_M53 = 2.0**-53
_LOW32 = np.uint64(0xFFFFFFFF)
_LOW16 = np.uint64(0xFFFF)

# Purposes: one independent stream per sensor for each.
NOISE = 1  # gaussian noise, and whether and how far the reading spikes
FAULT = 3  # whether read attempt n fails
PARAMS = 4  # the sensor's base level, drift, noise level and unit


def mix64_scalar(x: int) -> int:
    """The SplitMix64 finaliser on a Python int (bit-identical to `mix64`)."""
    x &= _MASK
    x ^= x >> 30
    x = (x * _C1) & _MASK
    x ^= x >> 27
    x = (x * _C2) & _MASK
    return x ^ (x >> 31)


def mix64(x: U64) -> U64:
    """The SplitMix64 finaliser, in place on a uint64 array (array ops wrap silently)."""
    x ^= x >> np.uint64(30)
    x *= _C1_U
    x ^= x >> np.uint64(27)
    x *= _C2_U
    x ^= x >> np.uint64(31)
    return x


def stream_keys(seed: int, purpose: int, sensors: npt.NDArray[np.int64]) -> U64:
    """The key of stream `purpose` for each sensor index, derived from `(seed, index)`."""
    root = mix64_scalar(mix64_scalar(seed * GOLDEN + purpose) + purpose)
    x = sensors.astype(np.uint64) + np.uint64(1)
    x *= _GOLDEN_U
    x += np.uint64(root)
    return mix64(x)


def key_scalar(seed: int, purpose: int, sensor: int) -> int:
    root = mix64_scalar(mix64_scalar(seed * GOLDEN + purpose) + purpose)
    return mix64_scalar(root + (sensor + 1) * GOLDEN)


def draw(keys: U64, counters: npt.NDArray[np.int64]) -> U64:
    """Raw 64-bit draw number `counters[i]` of stream `keys[i]`, row by row."""
    x = counters.astype(np.uint64) + np.uint64(1)
    x *= _GOLDEN_U
    x += keys
    return mix64(x)


def draw_scalar(key: int, counter: int) -> int:
    return mix64_scalar(key + (counter + 1) * GOLDEN)


def uniform(bits: U64) -> F64:
    """Uniform in [0, 1) from the top 53 bits. (Shifted values fit int64, whose conversion to
    float is much faster than uint64's.)"""
    out: F64 = (bits >> np.uint64(11)).view(np.int64).astype(np.float64)
    out *= _TWO_M53
    return out


def below(bits: U64, p: float) -> npt.NDArray[np.bool_]:
    """`uniform(bits) < p`, compared as integers (exactly equal: scaling by 2**53 is exact)."""
    out: npt.NDArray[np.bool_] = (bits >> np.uint64(11)) < np.uint64(_threshold53(p))
    return out


def below_scalar(bits: int, p: float) -> bool:
    return (bits >> 11) < _threshold53(p)


def _threshold53(p: float) -> int:
    return min(math.ceil(p * 2.0**53), 2**53)


def normal(bits: U64) -> F64:
    """Standard normal from the top 16 bits: the 65,536 quantiles of N(0, 1) at (k + 0.5)/2**16,
    looked up. A table gather costs a tenth of Box-Muller's log, sqrt and cosine, and 65,536
    levels out to 4.3 sigma are plenty for sensor noise. Bits 0..47 stay free for `middle_below`
    and `low` draws from the same number."""
    out: F64 = _normal_table()[(bits >> np.uint64(48)).view(np.int64)]
    return out


def middle_below(bits: U64, p: float) -> npt.NDArray[np.bool_]:
    """True with probability `p`, from bits 16..47 (compared as integers: no float pass)."""
    threshold = np.uint64(min(int(p * 2**32), 2**32))
    out: npt.NDArray[np.bool_] = ((bits >> np.uint64(16)) & _LOW32) < threshold
    return out


def low(bits: U64) -> F64:
    """Uniform in (0, 1) from bits 0..15."""
    out: F64 = (bits & _LOW16).view(np.int64).astype(np.float64)
    out += 0.5
    out *= 2.0**-16
    return out


@functools.cache
def _normal_table() -> F64:
    dist = NormalDist()
    return np.array([dist.inv_cdf((k + 0.5) / 65536) for k in range(65536)])
