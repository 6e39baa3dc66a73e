"""The stable event names, defined once.

Operators grep for these, dashboards and `ingestd tail --event` filter on them, and the contract
checks look for some of them by name: an event name is an interface, so it lives here and code
logs `events.SENSOR_DOWN`, never a string literal typed at the call site.
"""

from __future__ import annotations

from typing import Final

# lifecycle
DAEMON_STARTED: Final = "daemon_started"
PIPELINE_HEALTH: Final = "pipeline_health"
PIPELINE_FAILED: Final = "pipeline_failed"
CONFIG_RELOADED: Final = "config_reloaded"
CONFIG_RELOAD_FAILED: Final = "config_reload_failed"
CONFIG_KEY_CHANGED: Final = "config_key_changed"  # one per changed key of a reload, old -> new
SHUTDOWN_STARTED: Final = "shutdown_started"
SHUTDOWN_PHASE: Final = "shutdown_phase"
PIPELINE_STOPPING: Final = "pipeline_stopping"
SHUTDOWN_FORCED: Final = "shutdown_forced"
SHUTDOWN_TIMEOUT: Final = "shutdown_timeout"
SHUTDOWN_ABANDONED: Final = "shutdown_abandoned"
SHUTDOWN_COMPLETE: Final = "shutdown_complete"
THREADS_ABANDONED: Final = "threads_abandoned"

# sinks and resilience
BREAKER_STATE_CHANGED: Final = "breaker_state_changed"
FILE_REOPENED: Final = "file_reopened"
SINK_REJECTED: Final = "sink_rejected"
SPOOL_REPLAYED: Final = "spool_replayed"
SPOOL_RECORD_CORRUPT: Final = "spool_record_corrupt"
SPOOL_LOST: Final = "spool_lost"
SPOOL_CURSOR_INVALID: Final = "spool_cursor_invalid"
SPOOL_ENTRY_MOVED: Final = "spool_entry_moved"
SPOOL_QUARANTINE_FAILED: Final = "spool_quarantine_failed"
SPOOL_CURSOR_WRITE_FAILED: Final = "spool_cursor_write_failed"
SPOOL_FULL: Final = "spool_full"
SPOOL_WRITE_FAILED: Final = "spool_write_failed"
SPOOL_RECOVERED: Final = "spool_recovered"
SPOOL_ABANDONED: Final = "spool_abandoned"
SINK_WRITE_TIMEOUT: Final = "sink_write_timeout"
SINK_WRITE_FAILED: Final = "sink_write_failed"
DEAD_LETTER_FAILED: Final = "dead_letter_failed"
DEAD_LETTER_RECOVERED: Final = "dead_letter_recovered"
SINK_CLOSE_FAILED: Final = "sink_close_failed"
SINK_OPEN_FAILED: Final = "sink_open_failed"
SINK_CONNECTED: Final = "sink_connected"  # a publish sink (mqtt, nats) reached its broker
SINK_STREAM_CREATED: Final = "sink_stream_created"  # nats sink: `stream` was missing, created
HYPERTABLE_SKIPPED: Final = "hypertable_skipped"  # postgres hypertable = true, no TimescaleDB
HYPERTABLE_CREATED: Final = "hypertable_created"
SINK_ROTATED: Final = "sink_rotated"
SINK_ROTATE_FAILED: Final = "sink_rotate_failed"
SINK_TRUNCATE_FAILED: Final = "sink_truncate_failed"
TORN_LINE_REPAIRED: Final = "torn_line_repaired"

# sources and stages
SOURCE_FAILED: Final = "source_failed"
SOURCE_RESUMED: Final = "source_resumed"
SOURCE_POSITION_RESET: Final = "source_position_reset"
SENSOR_DOWN: Final = "sensor_down"
SENSOR_RECOVERED: Final = "sensor_recovered"
FEATURE_WORKER_CRASHED: Final = "feature_worker_crashed"
ENCODER_RESTARTED: Final = "encoder_restarted"
FEATURES_FAILED: Final = "features_failed"
ALERT_INPUT_MISSING: Final = "alert_input_missing"
SOURCE_CONNECTED: Final = "source_connected"
SOURCE_DISCONNECTED: Final = "source_disconnected"
SOURCE_STREAM_CREATED: Final = "source_stream_created"
SOURCE_CONSUMER_CREATED: Final = "source_consumer_created"
SOURCE_CONSUMER_UPDATED: Final = "source_consumer_updated"
SOURCE_ACK_FAILED: Final = "source_ack_failed"
SOURCE_BOUND: Final = "source_bound"  # a NATS source bound to its consumer; with the backlog
SOURCE_RECONNECTING: Final = "source_reconnecting"  # a broker source waits, then tries again
SOURCE_SUBSCRIBE_FAILED: Final = "source_subscribe_failed"  # the broker refused a topic filter
SOURCE_SUBSCRIBED: Final = "source_subscribed"  # the broker confirmed the topic filters (SUBACK)

# state across restarts
STATE_CORRUPT: Final = "state_corrupt"
STATE_WRITE_FAILED: Final = "state_write_failed"
STATE_WRITE_RECOVERED: Final = "state_write_recovered"

# observability itself
LOG_REOPEN_FAILED: Final = "log_reopen_failed"
LOG_DROPPED: Final = "log_dropped"
UNCAUGHT_EXCEPTION: Final = "uncaught_exception"
NOTIFY_FAILED: Final = "notify_failed"
LOOP_STALLED: Final = "loop_stalled"
LOOP_RECOVERED: Final = "loop_recovered"
HTTP_STARTED: Final = "http_started"
HTTP_REQUEST_FAILED: Final = "http_request_failed"
TAP_ATTACHED: Final = "tap_attached"
TAP_DETACHED: Final = "tap_detached"

ALL: Final[frozenset[str]] = frozenset(
    value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)
)
"""Every event name above (for tests and for `ingestd tail` completion)."""
