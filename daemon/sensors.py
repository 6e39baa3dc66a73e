"""The process-wide sensor table: `(sensor_id, unit)` pairs interned to small integers.

Why: batches carry many sensors' readings as numpy columns, and window stages keep per-sensor
state in arrays indexed by sensor. A string per reading would cost a Python object each; an
int32 index costs four bytes and vectorises. The table only grows (like `sys.intern`), and is the
one piece of process-wide state: every source, stage and sink must agree on the mapping.

Why the unit is part of the key: the index is all a batch row keeps of its sensor, so whatever
the index does not tell apart, the wire cannot print apart. Keyed by id alone, a `kelvin` reading
of a sensor first seen in `celsius` came out `celsius`. So an id seen with two units is two
entries, and the window stages, which keep state per index, keep separate windows for each
(a mean over celsius and kelvin values together would be meaningless anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class SensorTable:
    def __init__(self) -> None:
        self._index: dict[tuple[str, str], int] = {}
        self._ids: list[str] = []
        self._units: list[str] = []
        self._ids_array: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self._units_array: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        self._by_unit: dict[str, dict[str, int]] = {}  # unit -> sensor_id -> index (a cache)

    def intern(self, sensor_id: str, unit: str = "") -> int:
        """The index of `(sensor_id, unit)`, adding it on first sight."""
        key = (sensor_id, unit)
        idx = self._index.get(key)
        if idx is None:
            idx = len(self._ids)
            self._index[key] = idx
            self._ids.append(sensor_id)
            self._units.append(unit)
        return idx

    def intern_all(self, ids: Sequence[str], units: Sequence[str]) -> npt.NDArray[np.int32]:
        """The index of each row's `(ids[i], units[i])`, interning each distinct pair once, in
        the order first seen (what interning row by row does, at dict speed)."""
        pairs = list(zip(ids, units, strict=True))
        index = {pair: self.intern(*pair) for pair in dict.fromkeys(pairs)}
        return np.fromiter(map(index.__getitem__, pairs), dtype=np.int32, count=len(pairs))

    def intern_ids(self, ids: Sequence[str], unit: str) -> npt.NDArray[np.int32]:
        """What `intern_all(ids, [unit] * len(ids))` returns, at one dict lookup per row once
        the ids are known: a broker group is usually sensors seen before, all in one unit, and
        building a pair per row cost more than decoding them. The per-unit maps only cache
        what `intern` decided (indices never change), so they can never disagree with it."""
        known = self._by_unit.get(unit)
        if known is None:
            known = self._by_unit[unit] = {}
        try:
            return np.fromiter(map(known.__getitem__, ids), dtype=np.int32, count=len(ids))
        except KeyError:  # first sight of some: intern them in the order first seen
            for sensor_id in dict.fromkeys(ids):
                if sensor_id not in known:
                    known[sensor_id] = self.intern(sensor_id, unit)
        return np.fromiter(map(known.__getitem__, ids), dtype=np.int32, count=len(ids))

    def __len__(self) -> int:
        return len(self._ids)

    def sensor_id(self, idx: int) -> str:
        return self._ids[idx]

    def unit(self, idx: int) -> str:
        return self._units[idx]

    def ids_array(self) -> npt.NDArray[np.object_]:
        """`sensor_id` per index as a numpy object array (for vectorised lookups by sinks)."""
        if len(self._ids_array) != len(self._ids):
            self._ids_array = np.array(self._ids, dtype=object)
        return self._ids_array

    def units_array(self) -> npt.NDArray[np.object_]:
        if len(self._units_array) != len(self._units):
            self._units_array = np.array(self._units, dtype=object)
        return self._units_array


SENSORS = SensorTable()
