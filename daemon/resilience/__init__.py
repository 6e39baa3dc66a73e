"""Resilience around every sink write: retry, circuit breaker, durable spool, and the guarded sink
that combines them in the order that keeps readings in order and loses none."""

from daemon.resilience.breaker import (
    AsyncCircuitBreaker,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)
from daemon.resilience.codec import PayloadError, decode_batch, encode_batch
from daemon.resilience.copies import SpoolCopies
from daemon.resilience.guarded import GuardedSink
from daemon.resilience.parking import Delivery
from daemon.resilience.retry import backoff_delay, fast_retries, is_testing, retry_call, set_testing
from daemon.resilience.spool import Spool, SpooledBatch, SpoolFull

__all__ = [
    "AsyncCircuitBreaker",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Delivery",
    "GuardedSink",
    "PayloadError",
    "Spool",
    "SpoolCopies",
    "SpoolFull",
    "SpooledBatch",
    "backoff_delay",
    "decode_batch",
    "encode_batch",
    "fast_retries",
    "is_testing",
    "retry_call",
    "set_testing",
]
