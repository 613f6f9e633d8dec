"""Driver-side entropy controllers: one global controller per method, fed the batch entropy each step."""

from .adaptive_entropy import AdaptiveEntropyConfig, AdaptiveEntropyController
from .base import EntropyController
from .lambda_schedule import LambdaScheduleConfig, LambdaScheduleController
from .pi import PIController, PIControllerConfig

__all__ = [
    "AdaptiveEntropyConfig",
    "AdaptiveEntropyController",
    "EntropyController",
    "LambdaScheduleConfig",
    "LambdaScheduleController",
    "PIController",
    "PIControllerConfig",
]
