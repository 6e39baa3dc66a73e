"""The built-in stages; importing this package registers them by name."""

from daemon.stages.features import Features
from daemon.stages.moving_average import MovingAverage
from daemon.stages.normalize import Normalize
from daemon.stages.threshold import ThresholdFilter

__all__ = ["Features", "MovingAverage", "Normalize", "ThresholdFilter"]
