"""Driver-side entropy controllers: one global controller per method, fed the batch entropy each step."""

from .adaptive_entropy import AdaptiveEntropyConfig, AdaptiveEntropyController
from .base import CONTROLLER_REGISTRY, EntropyController, build_controller, build_controllers, get_controller_cls, register_controller
from .lambda_schedule import LambdaScheduleConfig, LambdaScheduleController
from .pi import PIController, PIControllerConfig

__all__ = [
    "CONTROLLER_REGISTRY",
    "EntropyController",
    "build_controller",
    "build_controllers",
    "get_controller_cls",
    "register_controller",
    "PIController",
    "PIControllerConfig",
    "AdaptiveEntropyController",
    "AdaptiveEntropyConfig",
    "LambdaScheduleController",
    "LambdaScheduleConfig",
]
