"""The driver's entropy control, once per step: the algorithm of the ``entropy_sync`` trainer, apart from verl's
plumbing (``sync.py`` reads the step's fields, calls this, and hands the coefficients to the workers).

    H_t = token-mean entropy of the step's rollout                 (measured once, on the driver)
    if H_t is finite:  coefficients = controllers(H_t)              (else: last step's, controller state untouched)
    coefficients += the loss methods' whole-step statistics        (``scope: step``)
    every non-finite coefficient keeps its last finite value      (``safety.py``)
    -> every actor worker's loss reads the same coefficients       (the batch's ``extra_info``)
    a step on which some rank used another value is counted        (``check_workers``)
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
        self.mismatch_steps = 0  # steps on which some worker used a coefficient other than the one sent

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

    def check_workers(self, logged: dict[str, float]) -> dict[str, float]:
        """Compare what the workers logged having used (min and max over all ranks) with what was sent this step."""
        differs = any(
            logged.get(metric_names.worker_coef_logged(name, stat), value) != value
            for name, value in self.coefficients.items()
            for stat in metric_names.WORKER_STATS
        )
        self.mismatch_steps += int(differs)
        return {metric_names.WORKER_COEF_MISMATCH: self.mismatch_steps}

    def state_dict(self) -> dict:
        return {
            "coefficients": dict(self.coefficients),
            "controllers": {name: c.state_dict() for name, c in self.controllers.items()},
            "nonfinite": self.safety.state_dict(),
            "worker_mismatch_steps": self.mismatch_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        for name, controller in self.controllers.items():
            controller.load_state_dict(state["controllers"][name])
        self.coefficients = dict(state.get("coefficients", {}))
        if "nonfinite" in state:
            self.safety.load_state_dict(state["nonfinite"])
        self.mismatch_steps = int(state.get("worker_mismatch_steps", 0))
