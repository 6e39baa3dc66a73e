"""The dead-letter file: rejected input, one JSON line each, with `reason`, `source`, `raw`.

Rejections are rare by nature, so writes are plain synchronous appends flushed at once: a
rejected reading must be on disk before it is counted. The file is created on the first
rejection, never before (a clean run writes nothing here).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import IO, Any

import orjson


class DeadLetter:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] | None = None
        self.count = 0

    def write(self, reason: str, source: str, raw: Any, **fields: Any) -> None:
        """Append one rejection. `raw` is the input as received (a str line, or a record)."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        line = {
            "ts": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            "reason": reason,
            "source": source,
            "raw": raw,
            **fields,
        }
        self._fh.write(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY, default=str) + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
