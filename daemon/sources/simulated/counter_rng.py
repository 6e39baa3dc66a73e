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
    """N(0, 1) quantiles at (k + 0.5) / 2**16, by Wichura's AS241 (what `NormalDist.inv_cdf`
    computes), vectorised: a Python call per level cost ~30 ms of every start."""
    p = (np.arange(65536) + 0.5) / 65536
    q = p - 0.5
    r = 0.180625 - q * q  # the central region, |q| <= 0.425
    central = q * _poly(r, _C_NUM) / _poly(r, _C_DEN)
    t = np.sqrt(-np.log(np.minimum(p, 1.0 - p))) - 1.6  # the tails (r <= 5 for these p)
    tail = np.copysign(_poly(t, _T_NUM) / _poly(t, _T_DEN), q)
    out: F64 = np.where(np.abs(q) <= 0.425, central, tail)
    return out


def _poly(x: F64, coefficients: tuple[float, ...]) -> F64:
    """Horner's rule, the highest power first (AS241's order of operations)."""
    out = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        out = out * x + c
    return out


_C_NUM = (
    2.50908_09287_30122_6727e3, 3.34305_75583_58812_8105e4, 6.72657_70927_00870_0853e4,
    4.59219_53931_54987_1457e4, 1.37316_93765_50946_1125e4, 1.97159_09503_06551_4427e3,
    1.33141_66789_17843_7745e2, 3.38713_28727_96366_6080e0,
)  # fmt: skip
_C_DEN = (
    5.22649_52788_52854_5610e3, 2.87290_85735_72194_2674e4, 3.93078_95800_09271_0610e4,
    2.12137_94301_58659_5867e4, 5.39419_60214_24751_1077e3, 6.87187_00749_20579_0830e2,
    4.23133_30701_60091_1252e1, 1.0,
)  # fmt: skip
_T_NUM = (
    7.74545_01427_83414_07640e-4, 2.27238_44989_26918_45833e-2, 2.41780_72517_74506_11770e-1,
    1.27045_82524_52368_38258e0, 3.64784_83247_63204_60504e0, 5.76949_72214_60691_40550e0,
    4.63033_78461_56545_29590e0, 1.42343_71107_49683_57734e0,
)  # fmt: skip
_T_DEN = (
    1.05075_00716_44416_84324e-9, 5.47593_80849_95344_94600e-4, 1.51986_66563_61645_71966e-2,
    1.48103_97642_74800_74590e-1, 6.89767_33498_51000_04550e-1, 1.67638_48301_83803_84940e0,
    2.05319_16266_37758_82187e0, 1.0,
)  # fmt: skip
