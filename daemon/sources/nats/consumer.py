"""Binding to the stream and the durable pull consumer: create what is missing, reconcile or
refuse what differs.

The decision on a consumer whose settings differ from the config (`max_ack_pending`,
`ack_wait_s`, `filter_subject`):
- `create = true`: ingestd owns the consumer, so it updates it in place (nats-server 2.9 allows
  these three to change on a live durable; nothing delivered is lost or repeated) and logs
  `source_consumer_updated` with every old and new value. Daemons sharing one durable should
  share these keys too: each one starting brings the consumer in line with its own config.
- `create = false`: the consumer belongs to whoever made it; the source refuses to start with
  an error naming the key and both values, rather than run with settings nobody asked for.
What can never work is refused either way, naming the key: a push consumer, an ack policy other
than explicit (ack-all would let one daemon ack another's untaken messages), a missing stream or
consumer with `create = false`, a stream that does not capture `subjects`. A stream is never
changed: it holds the data and may be shared with other applications.
"""

from __future__ import annotations

import math
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from daemon.observability import events
from daemon.sources.nats.config import NatsConfig
from daemon.sources.nats.subjects import covers


class NatsBindError(Exception):
    """The stream or the consumer cannot be used as configured; `key` is the config key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


async def bind(js: JetStreamContext, config: NatsConfig, log: Any) -> None:
    """Make sure the stream and the consumer exist and match `config` (see the module doc)."""
    await _ensure_stream(js, config, log)
    await _ensure_consumer(js, config, log)


async def _ensure_stream(js: JetStreamContext, config: NatsConfig, log: Any) -> None:
    name = config.stream
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        if not config.create:
            why = f"stream {name!r} does not exist (create = false)"
            raise NatsBindError("stream", why) from None
        stream = StreamConfig(name=name, subjects=list(config.subjects), storage=StorageType.FILE)
        try:
            await js.add_stream(stream)
        except APIError as exc:
            why = f"cannot create stream {name!r}: {_why(exc)}"
            raise NatsBindError("subjects", why) from None
        log.info(events.SOURCE_STREAM_CREATED, stream=name, subjects=list(config.subjects))
        return
    captured = list(info.config.subjects or [])
    missing = [s for s in config.subjects if not any(covers(c, s) for c in captured)]
    if missing:
        raise NatsBindError(
            "subjects",
            f"stream {name!r} captures {captured}, not {missing} (ingestd never changes a "
            "stream: fix subjects, or the stream)",
        )


def wanted(config: NatsConfig) -> ConsumerConfig:
    """The consumer these keys describe: durable, pulled, every message acked by itself."""
    return ConsumerConfig(
        durable_name=config.durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=config.ack_wait_s,
        max_ack_pending=config.max_ack_pending,
        filter_subject=config.filter_subject or None,
    )


def differences(have: ConsumerConfig, config: NatsConfig) -> dict[str, tuple[Any, Any]]:
    """The keys whose value on the server differs from the config: key -> (server, config)."""
    found: dict[str, tuple[Any, Any]] = {}
    if have.max_ack_pending != config.max_ack_pending:
        found["max_ack_pending"] = (have.max_ack_pending, config.max_ack_pending)
    ack_wait = have.ack_wait or 0.0
    if not math.isclose(ack_wait, config.ack_wait_s, rel_tol=1e-9, abs_tol=1e-6):
        found["ack_wait_s"] = (ack_wait, config.ack_wait_s)
    if (have.filter_subject or "") != config.filter_subject:
        found["filter_subject"] = (have.filter_subject or "", config.filter_subject)
    return found


async def _ensure_consumer(js: JetStreamContext, config: NatsConfig, log: Any) -> None:
    stream, durable = config.stream, config.durable
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        if not config.create:
            why = f"consumer {durable!r} of stream {stream!r} does not exist (create = false)"
            raise NatsBindError("durable", why) from None
        await _add(js, stream, wanted(config))
        log.info(events.SOURCE_CONSUMER_CREATED, stream=stream, durable=durable)
        return
    have = info.config
    if have.deliver_subject:
        raise NatsBindError(
            "durable", f"consumer {durable!r} is a push consumer; a pull one is needed"
        )
    if have.ack_policy != AckPolicy.EXPLICIT:
        policy = getattr(have.ack_policy, "value", have.ack_policy)
        raise NatsBindError(
            "durable",
            f"consumer {durable!r} acks {policy!r}; ingestd acks each message once it is taken "
            "and needs ack_policy 'explicit'",
        )
    diff = differences(have, config)
    if not diff:
        return
    if not config.create:
        key, (server, ours) = next(iter(diff.items()))
        others = [k for k in diff if k != key]
        more = f"; also differ: {', '.join(others)}" if others else ""
        raise NatsBindError(
            key,
            f"consumer {durable!r} has {server!r}, the config says {ours!r} (create = false: "
            f"the consumer is not changed; align one with the other){more}",
        )
    updated = have.evolve(
        ack_wait=config.ack_wait_s,
        max_ack_pending=config.max_ack_pending,
        filter_subject=config.filter_subject or None,
    )
    await _add(js, stream, updated)
    log.warning(
        events.SOURCE_CONSUMER_UPDATED,
        stream=stream,
        durable=durable,
        changed={k: {"was": server, "now": ours} for k, (server, ours) in diff.items()},
    )


async def _add(js: JetStreamContext, stream: str, consumer: ConsumerConfig) -> None:
    try:
        await js.add_consumer(stream, consumer)
    except APIError as exc:
        key = "filter_subject" if exc.err_code == _BAD_FILTER else "durable"
        raise NatsBindError(key, f"cannot create or update consumer: {_why(exc)}") from None


_BAD_FILTER = 10093  # "consumer filter subject is not a valid subset of the interest subjects"


def _why(exc: APIError) -> str:
    return str(exc.description or exc)
