"""Identity across restarts: what a component must remember between runs, in `[daemon] state_dir`.

`(sensor_id, seq)` names one reading for the life of a deployment, so an idempotent sink
(PostgreSQL's `ON CONFLICT DO NOTHING`) can drop redeliveries without ever dropping a new
reading. What keeps that true across a restart is small: each simulated sensor's next `seq`,
each file source's position. A component saves it under a key of its own choosing (its identity,
not its place in the config: `simulated:S`, `file:/var/log/x.csv`) once the readings it covers
are durably taken, never before; the pipeline writes what changed every `FLUSH_S` and at the end
of every generation.

One JSON file a key, written atomically (a temporary file, fsync, rename, fsync of the
directory), so a crash leaves the old state or the new one, never half of either. A state file
that cannot be read back (corrupt, not JSON, a directory) is moved aside to `<name>.corrupt`,
logged, and the component starts as if it had none: a restart never loops on bad state. A write
that fails (a full disk, a read-only or deleted directory) is logged and retried at the next
flush with the latest value; the directory is recreated if it was deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any

import orjson
import structlog

from daemon.durable import fsync_dir
from daemon.observability import events

log = structlog.get_logger("state")

FLUSH_S = 0.2  # how often changed state is written; what SIGKILL may cost beyond in-flight
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class StateStore:
    """`directory` None: kept in memory only (a component driven outside a daemon run)."""

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, Any] = {}
        self._dirty: dict[str, Any] = {}
        self._lock = threading.Lock()  # save() on the loop, flush() in a worker thread
        self._failing = False  # the last flush failed: log recovery once it works again

    def file_for(self, key: str) -> Path:
        """`simulated:S` → `simulated_S-<hash>.json`: readable, and distinct keys never share
        a file (the hash of the whole key)."""
        assert self.directory is not None
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:80]
        digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:8]
        return self.directory / f"{readable}-{digest}.json"

    def load(self, key: str) -> Any | None:
        """The state saved under `key` by an earlier run (or this one), or None."""
        with self._lock:
            if key in self._dirty:
                return self._dirty[key]
        if self.directory is None:
            return self._memory.get(key)
        path = self.file_for(key)
        try:
            return orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            aside = path.with_name(path.name + ".corrupt")
            try:
                path.replace(aside)
            except OSError:
                aside = path
            log.warning(
                events.STATE_CORRUPT, key=key, path=str(path), moved_to=str(aside), error=str(exc)
            )
            return None

    def save(self, key: str, value: Any) -> None:
        """Remember `value` (JSON-able; numpy arrays allowed) for `key`; written at the next
        flush. Only the latest value of a key is written."""
        with self._lock:
            self._dirty[key] = value

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def flush(self) -> bool:
        """Write every changed key; False (logged) when the disk refused. Blocking: call it
        in a worker thread from the event loop."""
        with self._lock:
            pending, self._dirty = self._dirty, {}
        if self.directory is None:
            self._memory.update(pending)
            return True
        failed: dict[str, Any] = {}
        for key, value in pending.items():
            try:
                self._write(key, value)
            except OSError as exc:
                failed[key] = value
                if not self._failing:
                    log.error(
                        events.STATE_WRITE_FAILED,
                        key=key,
                        directory=str(self.directory),
                        error=str(exc),
                    )
        with self._lock:  # a newer value saved meanwhile wins over the one that failed
            self._dirty = {**failed, **self._dirty}
        if failed:
            self._failing = True
            return False
        if self._failing:
            self._failing = False
            log.info(events.STATE_WRITE_RECOVERED, directory=str(self.directory))
        return True

    def _write(self, key: str, value: Any) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.file_for(key)
        tmp = path.with_name(f".{path.name}.tmp")
        data = memoryview(orjson.dumps(value, option=_OPTIONS))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        fsync_dir(self.directory)
