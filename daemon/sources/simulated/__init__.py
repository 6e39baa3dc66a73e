"""The `simulated` source: N sensors on a shared metronome, counter-based RNG, last-known-good."""

from daemon.sources.simulated.source import SimulatedSource

__all__ = ["SimulatedSource"]
