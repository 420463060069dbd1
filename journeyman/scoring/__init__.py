"""Lead scoring: rules in code, exponential decay, thresholds with hysteresis."""

from journeyman.scoring.decay import decayed

__all__ = ["decayed"]
