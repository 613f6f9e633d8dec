"""The controller interface and registry.

A controller lives on the driver. Once per training step it reads one measurement (the global token-mean entropy of
the step's rollout batch) and returns the loss-weight coefficients every actor worker will use for this step's update.
Its whole state is a small dict, written into verl checkpoints so a resumed run continues the same trajectory.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Callable

CONTROLLER_REGISTRY: dict[str, type["EntropyController"]] = {}


def register_controller(name: str) -> Callable[[type], type]:
    def decorator(cls):
        if name in CONTROLLER_REGISTRY and CONTROLLER_REGISTRY[name] is not cls:
            raise ValueError(f"controller {name!r} is already registered to {CONTROLLER_REGISTRY[name].__name__}")
        cls.name = name
        CONTROLLER_REGISTRY[name] = cls
        return cls

    return decorator


def get_controller_cls(name: str) -> type["EntropyController"]:
    if name not in CONTROLLER_REGISTRY:
        raise KeyError(f"unknown entropy controller {name!r}; registered: {sorted(CONTROLLER_REGISTRY)}")
    return CONTROLLER_REGISTRY[name]


class EntropyController(abc.ABC):
    """``update(measurement) -> coefficients``; ``state_dict`` / ``load_state_dict`` for checkpoints.

    Subclasses implement ``update`` (returning through ``_record``), ``_state`` and ``_load_state``; the base keeps
    what the last update saw and did, for ``metrics()`` and for the checkpoint.
    """

    name: str = "base"
    outputs: tuple[str, ...] = ()  # the coefficient keys update() returns
    config_cls: type = object  # the dataclass its Hydra config block is built into

    def __init__(self):
        self._last: dict[str, float] = {"measurement": math.nan, "error": math.nan}

    @abc.abstractmethod
    def update(self, measurement: float) -> dict[str, float]:
        """Advance one step with this step's measured entropy; return the coefficients for this step's update."""

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None: ...

    def _record(self, measurement: float, error: float, outputs: dict[str, float]) -> dict[str, float]:
        self._last = {"measurement": float(measurement), "error": float(error), **outputs}
        return outputs

    def state_dict(self) -> dict[str, Any]:
        return {**self._state(), "last": dict(self._last)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_state(state)
        self._last = dict(state.get("last", self._last))

    def metrics(self) -> dict[str, float]:
        """What the last update saw and did (measurement, error, outputs, internal state), for verl's logger."""
        return {**self._last, **self._state()}


def build_controller(name: str, config: dict | None) -> "EntropyController":
    """One controller from its registry name and config dict. Unknown names raise KeyError; bad values raise the
    config dataclass's ValueError (or TypeError for an unknown field)."""
    cls = get_controller_cls(name)
    return cls(cls.config_cls(**dict(config or {})))


def build_controllers(spec: dict) -> dict[str, "EntropyController"]:
    """``{name: config dict}`` (the ``entropy_verl.controllers`` block) -> controllers, in config order."""
    return {name: build_controller(name, cfg) for name, cfg in spec.items()}
