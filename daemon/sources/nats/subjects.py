"""NATS subject and name rules, checked at config load so a typo fails with exit 78, not later.

Why here and not left to the server: the server would refuse a bad subject only once connected,
which for a daemon started before its broker could be hours later; and a stream that captures
other subjects than the config names would accept the consumer yet deliver nothing. `covers`
answers the second question without the server, by the same wildcard rules it applies.
"""

from __future__ import annotations

_FORBIDDEN_IN_NAME = frozenset(" \t\r\n.*>/\\")


def subject_issue(subject: str) -> str | None:
    """Why `subject` is not a valid subject or filter, or None. Tokens are separated by `.`,
    none empty; `*` is one whole token, `>` only the last whole token."""
    if not subject:
        return "must not be empty"
    if any(ch.isspace() for ch in subject):
        return f"{subject!r} holds whitespace"
    tokens = subject.split(".")
    if "" in tokens:
        return f"{subject!r} has an empty token (a leading, trailing or double '.')"
    for i, token in enumerate(tokens):
        if token == ">" and i != len(tokens) - 1:
            return f"{subject!r}: '>' may only be the last token"
        if len(token) > 1 and ("*" in token or ">" in token):
            return f"{subject!r}: a wildcard must be a whole token"
    return None


def name_issue(name: str) -> str | None:
    """Why `name` cannot name a stream or a consumer, or None."""
    if not name:
        return "must not be empty"
    bad = sorted(set(name) & _FORBIDDEN_IN_NAME)
    if bad:
        return f"{name!r} must not contain {' '.join(repr(c) for c in bad)}"
    return None


def covers(pattern: str, subject: str) -> bool:
    """Whether every message on `subject` (itself possibly a wildcard filter) also matches
    `pattern`: `sensors.>` covers `sensors.*.temp`, `sensors.*` does not cover `sensors.>`."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got):
            return False
        if token != "*" and token != got[i]:
            return False
        if token == "*" and got[i] == ">":
            return False
    return len(got) == len(want)
