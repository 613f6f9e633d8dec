"""The controller interface (controllers register with ``entropy_verl.registry.register(name, kind="controller")``).

A controller lives on the driver. Once per training step it reads one measurement (the global token-mean entropy of
the step's rollout batch) and returns the loss-weight coefficients every actor worker will use for this step's update.
Its whole state is a small dict, written into verl checkpoints so a resumed run continues the same trajectory.
"""

from __future__ import annotations

import abc
import math
from typing import Any


class EntropyController(abc.ABC):
    """``update(measurement) -> coefficients``; ``state_dict`` / ``load_state_dict`` for checkpoints.

    Subclasses implement ``update`` (returning through ``_record``), ``_state`` and ``_load_state``; the base keeps
    what the last update saw and did, for ``metrics()`` and for the checkpoint.
    """

    name: str = "base"  # set by ``entropy_verl.registry.register``

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


def check_target(target_entropy: float, target_temperature: float | None) -> None:
    """The range checks every entropy-target config shares (called from its ``__post_init__``)."""
    if not target_entropy >= 0:
        raise ValueError(f"target_entropy must be >= 0, got {target_entropy}")
    if target_temperature is not None and not target_temperature > 0:
        raise ValueError(f"target_temperature must be > 0 or null, got {target_temperature}")
