"""structlog configured once: one JSON object per line, to stdout (journald) or a file.

Every line is `{"timestamp": "...Z", "level": ..., "logger": ..., "event": ..., **fields}`,
rendered by orjson and written with a single write per line, so `tail -f` and journald see whole
lines at once and never a partial one.

Why these pieces:
- Level filtering is `structlog.make_filtering_bound_logger`: a disabled level is a method that
  returns None, so a debug call in a hot loop costs a function call, not a processor chain.
  Loggers are cached on first use, which normally freezes their level. To let SIGHUP change
  `log_level` anyway, every logger is an instance of one class (`_LevelledLogger`) whose single
  base is swapped for the filtering class of the new level: cached loggers follow at once, and
  the hot path stays a plain method lookup.
- Output goes through one process-wide `LogSink`. `reopen()` opens the file by name *before*
  closing the old handle and swaps them under a lock, so after logrotate's rename + create no
  line is lost (lines written before the swap land in the renamed file) or written twice.
- The standard library's `logging` (asyncio, third-party clients) and uncaught exceptions are
  routed through the same renderer, with the traceback in one `exception` field: nothing else
  reaches stdout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from daemon.observability import events

_ORJSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
LEVELS = ("debug", "info", "warning", "error", "critical")


class LogSink:
    """Where rendered lines go: stdout (looked up per write, so a swapped `sys.stdout` is
    honoured) or a file opened for append. Thread-safe; never raises on write."""

    def __init__(self, path: str = "") -> None:
        self._lock = threading.Lock()
        self.path = path
        self._fh: IO[bytes] | None = _open_append(path) if path else None
        self._closed = False
        self.failed_writes = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, line: bytes) -> None:
        """Write one rendered line. A logging call must never break the caller (a full log
        disk must not stop the pipeline): a failed write goes to fd 2 as a last resort, or is
        dropped and counted in `failed_writes`."""
        try:
            with self._lock:
                if self._fh is not None:
                    _write_whole(self._fh, line)
                    return
            # stdout mode, or a line logged after the file was closed (e.g. from atexit).
            _write_stream(sys.stderr if self._closed else sys.stdout, line)
        except (OSError, ValueError):
            self.failed_writes += 1
            with contextlib.suppress(OSError):
                os.write(2, line)

    def reopen(self) -> None:
        """Reopen the file by name (after logrotate renamed it). No-op in stdout mode.

        Call it from the event loop (`loop.add_signal_handler`) or any thread, never from a
        `signal.signal` handler: that could interrupt a write holding the lock."""
        if self.path and not self._closed:
            self.retarget(self.path)

    def retarget(self, path: str) -> None:
        """Switch to `path` (stdout for ""), e.g. for a reload that changes `log_file`. If it
        cannot be opened, keep writing where we were and say so: losing the log is worse."""
        try:
            new = _open_append(path) if path else None
        except OSError as exc:
            structlog.get_logger(__name__).error(
                events.LOG_REOPEN_FAILED, path=path, error=str(exc)
            )
            return
        with self._lock:
            old, self._fh, self.path, self._closed = self._fh, new, path, False
        if old is not None:
            old.close()

    def reconfigure(self, level: str, log_file: str) -> LogSink:
        """Apply a reloaded `[daemon] log_level` / `log_file`; returns the (same) sink."""
        return reconfigure(level, log_file)

    def close(self) -> None:
        """Close the file (later lines go to stderr); in stdout mode just flush."""
        with self._lock:
            old, self._fh, self._closed = self._fh, None, bool(self.path)
        if old is not None:
            old.close()
        else:
            sys.stdout.flush()


def _write_whole(fh: IO[bytes], line: bytes) -> None:
    """All of `line` or none of it: a short write (file size limit, full disk) is completed or
    cut off again, so the next line never lands glued to a fragment."""
    done = 0
    try:
        while done < len(line):
            done += fh.write(line[done:])
    except OSError:
        if done:
            with contextlib.suppress(OSError):
                os.ftruncate(fh.fileno(), fh.tell() - done)
        raise


def _write_stream(stream: IO[str], line: bytes) -> None:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(line)
        buffer.flush()
    else:
        stream.write(line.decode("utf-8", "replace"))
        stream.flush()


def _open_append(path: str) -> IO[bytes]:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # Unbuffered + O_APPEND: each line is one write(2), visible at once, never interleaved.
    return p.open("ab", buffering=0)


class _LineLogger:
    """What structlog wraps: knows its name and hands rendered bytes to the sink."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, line: bytes) -> None:
        _SINK.write(line)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


_SINK = LogSink()
_LOGGERS: dict[str, _LineLogger] = {}
_LevelledLogger: type[Any] = type(
    "_LevelledLogger", (structlog.make_filtering_bound_logger("info"),), {}
)


def _logger_factory(*args: Any) -> _LineLogger:
    name = str(args[0]) if args else "ingestd"
    logger = _LOGGERS.get(name)
    if logger is None:
        logger = _LOGGERS[name] = _LineLogger(name)
    return logger


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _render(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> bytes:
    """The last processor: fixed keys first, then the fields, as one JSON line."""
    line: dict[str, Any] = {
        "timestamp": _now_iso(),
        "level": method_name,
        "logger": getattr(logger, "name", "ingestd"),
        "event": event_dict.pop("event", ""),
    }
    line.update(event_dict)
    try:
        return orjson.dumps(line, default=_fallback, option=_ORJSON_OPTIONS)
    except TypeError:  # an int beyond 64 bits, nested or not: keep the line, not the type
        safe = {k: _stringify_ints(v) for k, v in line.items()}
        return orjson.dumps(safe, default=_fallback, option=_ORJSON_OPTIONS)


def _stringify_ints(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    return str(value) if isinstance(value, int | list | dict) else value


def _fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.format_exc_info,  # the traceback as one "exception" string field
    _render,
]


def configure_logging(level: str, log_file: str) -> LogSink:
    """Configure structlog, the stdlib bridge and the exception hooks; returns the sink."""
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=_LevelledLogger,
        logger_factory=_logger_factory,
        cache_logger_on_first_use=True,
    )
    _install_stdlib_bridge()
    _install_excepthooks()
    return reconfigure(level, log_file)


def reconfigure(level: str, log_file: str) -> LogSink:
    """Change the level and the destination of every logger, cached ones included."""
    _set_level(level)
    if log_file != _SINK.path or _SINK.closed:
        _SINK.retarget(log_file)
    return _SINK


def _set_level(level: str) -> None:
    name = level.lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (known: {', '.join(LEVELS)})")
    _LevelledLogger.__bases__ = (structlog.make_filtering_bound_logger(name),)
    logging.getLogger().setLevel(name.upper())


class _StdlibBridge(logging.Handler):
    """Renders stdlib log records (asyncio, client libraries) through structlog."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            level = min(max(record.levelno // 10 * 10, logging.DEBUG), logging.CRITICAL)
            structlog.get_logger(record.name).log(level, record.getMessage(), **fields)
        except Exception:  # a Handler must never raise: stdlib's contract, reported there
            self.handleError(record)


def _install_stdlib_bridge() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _StdlibBridge) for h in root.handlers):
        root.handlers = [h for h in root.handlers if type(h) is not logging.StreamHandler]
        root.addHandler(_StdlibBridge())


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    structlog.get_logger("ingestd").critical(
        events.UNCAUGHT_EXCEPTION, exc_info=(exc_type, exc, tb)
    )


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    structlog.get_logger("ingestd").critical(
        events.UNCAUGHT_EXCEPTION,
        thread=args.thread.name if args.thread is not None else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _install_excepthooks() -> None:
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
