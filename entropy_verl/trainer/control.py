"""The driver's entropy control, once per step: the algorithm of the ``entropy_sync`` trainer, apart from verl's
plumbing (``sync.py`` reads the step's fields, calls this, and hands the coefficients to the workers).

    scheduled settings at step t                                   (``schedule.py``; controllers run with them)
    H_t = token-mean entropy of the step's rollout                 (measured once, on the driver)
    if H_t is finite:  coefficients = controllers(H_t)              (else: last step's, controller state untouched)
    coefficients += the loss methods' whole-step statistics        (``scope: step``)
    every non-finite coefficient keeps its last finite value      (``safety.py``)
    -> every actor worker's loss reads the same coefficients       (the batch's ``extra_info``), and the loss
                                                                      methods' scheduled settings with them
    a step on which some rank used another value is counted        (``check_workers``)
"""

from __future__ import annotations

import logging

from entropy_verl import metric_names
from entropy_verl.config import EntropyVerlConfig
from entropy_verl.losses.context import scheduled_key
from entropy_verl.schedule import values_at, with_values

from .safety import Safety

logger = logging.getLogger(__name__)


class EntropyControl:
    def __init__(self, parsed: EntropyVerlConfig):
        self.controllers = {spec.name: spec.impl(cfg) for spec, cfg in parsed.controllers}
        self.safety = Safety(parsed.safety)
        self.coefficients: dict[str, float] = {}  # what the workers get this step
        self.entropy: float | None = None  # this step's measurement, when finite
        self.mismatch_steps = 0  # steps on which some worker used a coefficient other than the one sent
        self.schedules = parsed.schedules  # {entry: {setting: Schedule}}
        self.scheduled: dict[str, dict[str, float]] = {}  # {entry: {setting: value}} at this step

    @property
    def keeps_state(self) -> bool:
        """Whether checkpoints hold this control's state (controllers, or schedules: recorded with the run)."""
        return bool(self.controllers or self.schedules)

    def begin_step(self, step: int) -> dict[str, float]:
        """Evaluate the schedules at ``step``: the controllers' configs take the values now, the loss methods get them
        with the step's coefficients (``broadcast``) and the driver-side computations through ``config_of``. Returns
        the values as metrics."""
        self.scheduled = {name: values_at(settings, step) for name, settings in self.schedules.items()}
        for name, values in self.scheduled.items():
            if name in self.controllers:
                controller = self.controllers[name]
                controller.config = with_values(controller.config, values)
        return {
            metric_names.schedule(name, setting): value
            for name, values in self.scheduled.items()
            for setting, value in values.items()
        }

    def config_of(self, spec, cfg):
        """``cfg`` (the registered method ``spec``'s config) with this step's scheduled values."""
        return with_values(cfg, self.scheduled.get(spec.name))

    @property
    def broadcast(self) -> dict[str, float]:
        """What every actor worker gets this step: the coefficients, and the loss methods' scheduled settings."""
        return {
            **self.coefficients,
            **{
                scheduled_key(name, setting): value
                for name, values in self.scheduled.items()
                if name not in self.controllers
                for setting, value in values.items()
            },
        }

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
            for name, value in self.broadcast.items()
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
            "schedules": self._schedules_state(),
        }

    def _schedules_state(self) -> dict:
        """The schedules as a checkpoint holds them: {entry: {setting: [[step, value], ...]}}."""
        return {
            name: {setting: schedule.as_list() for setting, schedule in settings.items()}
            for name, settings in self.schedules.items()
        }

    def load_state_dict(self, state: dict) -> None:
        for name, controller in self.controllers.items():
            controller.load_state_dict(state["controllers"][name])
        self.coefficients = dict(state.get("coefficients", {}))
        if "nonfinite" in state:
            self.safety.load_state_dict(state["nonfinite"])
        self.mismatch_steps = int(state.get("worker_mismatch_steps", 0))
        saved = state.get("schedules", {})
        now = self._schedules_state()
        if saved != now:  # a schedule is a function of the step: the new one applies from the resumed step on
            changed = sorted(set(saved) ^ set(now) | {n for n in set(saved) & set(now) if saved[n] != now[n]})
            logger.warning("resuming with schedules other than the checkpoint's (%s): the new ones apply", changed)
