"""The reading counters that must reconcile: read + replayed == written + filtered + rejected
+ spooled + in_flight. Kept in one explicit object passed around, never in globals."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Counters:
    read: int = 0  # readings that entered from sources (malformed input included)
    replayed: int = 0  # readings that entered from a spool left by an earlier run
    written: int = 0  # acknowledged by every sink
    filtered: int = 0  # dropped on purpose by a stage
    rejected: int = 0  # bad input, dead-lettered with the reason
    spooled: int = 0  # put into a spool this run (running total)
    unspooled: int = 0  # this run's spooled readings later delivered from the spool
    read_failures: int = 0  # failed sensor reads with no last-known-good value (not in read)
    features: int = 0  # derived feature records emitted
    alerts: int = 0  # derived alert records emitted (firing and resolved)
    spool_corrupt: int = 0  # spool records skipped for a bad CRC, quarantined
    # Spool data found missing (a deleted, emptied or replaced segment, a segment cut below the
    # cursor): one per segment. Not readings: what a vanished file held is unknown.
    spool_lost: int = 0
    # Readings neither spooled nor delivered at a forced exit (every spool write failed): they
    # stay in `in_flight`, the only loss allowed. Not in the identity.
    abandoned: int = 0

    @property
    def in_flight(self) -> int:
        return (
            self.read
            + self.replayed
            - (self.written + self.filtered + self.rejected + self.spooled)
        )

    def reconciles(self) -> bool:
        return self.in_flight == 0

    def snapshot(self) -> dict[str, int]:
        out = asdict(self)
        out["in_flight"] = self.in_flight
        return out
