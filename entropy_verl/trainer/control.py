"""The driver's entropy control, once per step: the algorithm of the ``entropy_sync`` trainer, apart from verl's
plumbing (``sync.py`` reads the step's fields, calls this, and hands the coefficients to the workers).

    H_t = token-mean entropy of the step's rollout                 (measured once, on the driver)
    if H_t is finite:  coefficients = controllers(H_t)              (else: last step's, controller state untouched)
    coefficients += the loss methods' whole-step statistics        (``scope: step``)
    every non-finite coefficient keeps its last finite value      (``safety.py``)
    -> every actor worker's loss reads the same coefficients       (the batch's ``extra_info``)
"""

from __future__ import annotations

from entropy_verl import metric_names
from entropy_verl.config import EntropyVerlConfig

from .safety import Safety


class EntropyControl:
    def __init__(self, parsed: EntropyVerlConfig):
        self.controllers = {spec.name: spec.impl(cfg) for spec, cfg in parsed.controllers}
        self.safety = Safety(parsed.safety)
        self.coefficients: dict[str, float] = {}  # what the workers get this step
        self.entropy: float | None = None  # this step's measurement, when finite

    def measure(self, entropy: float, step: int) -> dict[str, float]:
        """Advance the controllers with this step's entropy; returns their metrics (on a skipped step, the
        unchanged state)."""
        if self.safety.accept(entropy, step):
            self.entropy = entropy
            outputs = {}
            for controller in self.controllers.values():
                outputs.update(controller.update(entropy))
            self.coefficients = self.safety.finite(outputs, self.coefficients, step)
        else:
            self.entropy = None
        metrics = {
            metric_names.controller(name, stat): value
            for name, controller in self.controllers.items()
            for stat, value in controller.metrics().items()
        }
        return {**metrics, **self.safety.metrics()}

    def add_step_stats(self, stats: dict[str, float], step: int) -> None:
        """The loss methods' whole-step statistics, broadcast with the controllers' outputs."""
        self.coefficients.update(self.safety.finite(stats, self.coefficients, step))

    def state_dict(self) -> dict:
        return {
            "coefficients": dict(self.coefficients),
            "controllers": {name: c.state_dict() for name, c in self.controllers.items()},
            "nonfinite": self.safety.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name, controller in self.controllers.items():
            controller.load_state_dict(state["controllers"][name])
        self.coefficients = dict(state.get("coefficients", {}))
        if "nonfinite" in state:
            self.safety.load_state_dict(state["nonfinite"])
