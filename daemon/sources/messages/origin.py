"""A sensor's id from where a message was published: the last topic level, or a pattern.

Fleets often publish bare values or id-less objects on `plant/<sensor>/temp`; the topic is then
the identity. A pattern is written in topic levels: literal levels must match, `+` matches any
one level, `{sensor_id}` is the id, a final `#` matches the rest. MQTT separates levels with `/`,
NATS subjects with `.`; the same pattern language serves both.
"""

from __future__ import annotations

from collections.abc import Callable

SENSOR_ID = "{sensor_id}"

SensorFromOrigin = Callable[[str], str | None]


def payload_issues(sensor_id_from: str, topic_pattern: str) -> list[tuple[str, str]]:
    """Config problems of the two keys, as (key, reason)."""
    issues: list[tuple[str, str]] = []
    if sensor_id_from not in ("payload", "topic"):
        issues.append(("sensor_id_from", f"must be 'payload' or 'topic', got {sensor_id_from!r}"))
    if topic_pattern:
        if sensor_id_from != "topic":
            issues.append(("topic_pattern", "is used only with sensor_id_from = 'topic'"))
        if topic_pattern.count(SENSOR_ID) != 1:
            issues.append(("topic_pattern", f"must hold {SENSOR_ID} exactly once"))
        elif "#" in topic_pattern[:-1]:
            issues.append(("topic_pattern", "'#' may only be the last level"))
    return issues


def sensor_from_origin(pattern: str, separator: str) -> SensorFromOrigin:
    """A function from a topic to its sensor id, or None when the topic does not match."""
    if not pattern:
        return lambda origin: origin.rsplit(separator, 1)[-1] or None
    levels = pattern.split(separator)
    rest = levels[-1] == "#"
    if rest:
        levels = levels[:-1]
    at = levels.index(SENSOR_ID)
    width = len(levels)

    def match(origin: str) -> str | None:
        parts = origin.split(separator)
        if len(parts) < width or (len(parts) > width and not rest):
            return None
        for want, got in zip(levels, parts, strict=False):
            if want not in ("+", SENSOR_ID) and want != got:
                return None
        return parts[at] or None

    return match
