"""``EntropySyncTrainer``: verl's v1 synchronous trainer, selected with ``trainer.v1.trainer_mode=entropy_sync``.

It is verl's ``PPOTrainerSync`` (colocated rollout, on-policy, weights pushed to the rollout after every step) plus:
- a configurable replay-buffer poll interval (``trainer.v1.entropy_sync.poll_interval_s``): verl polls every 2 s
  for finished rollouts, which is noise on a GPU step but half of a CPU step on the embedded default;
- the hook points where the driver-side entropy controllers live.
"""

from __future__ import annotations

from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

TRAINER_NAME = "entropy_sync"
DEFAULT_POLL_INTERVAL_S = 2.0  # verl's own default


@register_trainer(TRAINER_NAME)
class EntropySyncTrainer(PPOTrainerSync):
    def _build_replay_buffer(self):
        # verl branches on trainer_mode == "sync" for on-policy semantics; this trainer *is* the sync trainer.
        own_config = self.config.trainer.v1.get(TRAINER_NAME, {}) or {}
        self.trainer_mode = "sync"
        replay_buffer = super()._build_replay_buffer()
        replay_buffer.poll_interval = float(own_config.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S))
        return replay_buffer
