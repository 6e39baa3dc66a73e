"""structlog configured once: one JSON object per line, to stdout (journald) or a file.

Every line is `{"timestamp": "...Z", "level": ..., "logger": ..., "event": ..., **fields}`,
rendered by orjson and written whole, so `tail -f` and journald never see a partial line.

Why these pieces:
- Level filtering is `structlog.make_filtering_bound_logger`: a disabled level is a method that
  returns None, so a debug call in a hot loop costs a function call, not a processor chain.
  Loggers are cached on first use, which normally freezes their level. To let SIGHUP change
  `log_level` anyway, every logger is an instance of one class (`_LevelledLogger`) whose single
  base is swapped for the filtering class of the new level: cached loggers follow at once, and
  the hot path stays a plain method lookup.
- Output goes through one process-wide `LogSink` (logsink.py): a log call never blocks, not
  even on a stdout nobody reads (lines are queued, and past a bound dropped and counted), and
  `reopen()` after logrotate's rename + create loses and duplicates no line.
- The standard library's `logging` (asyncio, third-party clients) and uncaught exceptions are
  routed through the same renderer, with the traceback in one `exception` field: nothing else
  reaches stdout.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from types import TracebackType
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from daemon.observability import events
from daemon.observability.logsink import LogSink

_ORJSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
LEVELS = ("debug", "info", "warning", "error", "critical")

__all__ = ["LEVELS", "LogSink", "configure_logging", "dropped_lines", "reconfigure"]


class _LineLogger:
    """What structlog wraps: knows its name and hands rendered bytes to the sink."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, line: bytes) -> None:
        _SINK.write(line)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


_SINK = LogSink()


def dropped_lines() -> int:
    """Log lines dropped so far because their destination did not take them (for the health
    report and the shutdown summary)."""
    return _SINK.dropped


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
