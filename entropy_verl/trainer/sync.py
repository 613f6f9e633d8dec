"""entropy_verl's trainers: verl's v1 trainers plus driver-side entropy control, written once
(``EntropyControlTrainer``, a mixin on verl's ``PPOTrainer`` hooks) and registered in verl's trainer registry under
their own modes:

    trainer.v1.trainer_mode=entropy_sync             verl's PPOTrainerSync (colocated rollout, on-policy)
    trainer.v1.trainer_mode=entropy_colocate_async   verl's PPOTrainerColocateAsync (partial rollouts)

Each runs verl's mode as verl does (its replay buffer, rollout client and ``trainer.v1.<verl mode>`` settings), plus:

1. after verl recomputes old log-probs (which also yields per-token entropy; no extra forward pass), the trainer
   takes the *global* token-mean entropy of the step's rollout batch;
2. it updates the configured controllers with it (``control.py``: the algorithm, apart from this file's plumbing);
3. it puts their coefficients into the batch's ``extra_info`` before the actor update, so every actor worker's
   entropy-aware loss (installed with verl's ``set_loss_fn``) reads the same values;
4. controller state is saved next to verl's checkpoint of the same step and restored on resume (``run_state.py``).

Every worker call (actor, reference, critic) gets the step's batch meta through one field filter (``_for_workers``).

It also makes verl's replay-buffer poll interval configurable (``trainer.v1.entropy_sync.poll_interval_s``): verl
polls every 2 s for finished rollouts, noise on a GPU step but half of a CPU step on the embedded default; and while
it waits, a watchdog (``trainer.v1.entropy_sync.worker_check_s``, ``watchdog.py``) fails the run when a worker died.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from functools import partial

import ray
import torch
import transfer_queue as tq
from omegaconf import OmegaConf, open_dict
from tensordict import TensorDict
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_colocate_async import PPOTrainerColocateAsync
from verl.trainer.ppo.v1.trainer_separate_async import PPOTrainerSeparateAsync
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.debug import marked_timer
from verl.utils.transferqueue_utils import kv_batch_meta2batch_meta
from verl.workers.utils.padding import response_from_nested, response_to_nested

from entropy_verl import metric_names, run_state
from entropy_verl.advantages import estimator_inputs
from entropy_verl.config import TRAINER_MODES, TRAINER_NAME, objective, parameter_sync_step
from entropy_verl.diagnostics.step import StepDiagnostics
from entropy_verl.engine import VOCAB_STATS_FLAG, VOCAB_STATS_OUTPUTS
from entropy_verl.losses import COEFFICIENTS_KEY, SELECTION_PREFIX, entropy_aware_loss
from entropy_verl.losses.masked import valid
from entropy_verl.registry import FINAL_ANSWERS, REWARD_COMPONENTS, SEQUENCE_MEAN_OLD_LOG_PROB, VOCAB_STATS
from entropy_verl.rollout.hf.client import TOKEN_VERSIONS
from entropy_verl.tasks import load_task_function
from entropy_verl.validation import validate

from .control import EntropyControl
from .safety import NonFiniteError
from .watchdog import DEFAULT_WORKER_CHECK_S, WorkerDied, WorkerWatchdog
from .whole_step import StepFields, whole_step_values

# Per-sample Python objects verl's agent loop stores with each sample for the reward, validation and logs. The actor
# and reference workers read none of them, yet fetch every field a meta lists (all when it lists none) and move each
# sample's objects one by one (tensordict's ``NonTensorData``): on the embedded default, ~10% of the actor's time.
# Multi-modal fields stay: a vision model's forward reads them.
ROLLOUT_RECORDS = frozenset(
    {
        "ability",
        "data_source",
        "extra_fields",
        "extra_info",
        "index",
        "interaction_kwargs",
        "metrics",
        "num_turns",
        "prompt",
        "raw_prompt",
        "reward_model",
        "session_id",
        "tools_kwargs",
    }
)

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 2.0  # verl's own default
NONFINITE_DRILL_ENV = "ENTROPY_VERL_NONFINITE_DRILL_STEPS"


def ray_node_addresses() -> list[str]:
    """The addresses the live nodes of this run's Ray cluster advertise (a local run's: 127.0.0.1 only)."""
    import ray

    return sorted({node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]})


class EntropyControlTrainer:
    """Entropy control on any of verl's v1 trainers: a mixin placed before the verl trainer class in the bases, using
    only the hooks verl's ``PPOTrainer`` defines (``step``, ``_compute_old_log_prob``, ``_update_actor``, ...). The
    concrete trainers below pick verl's mode (``VERL_MODE``): its replay buffer, its rollout client and its
    ``trainer.v1.<mode>`` settings."""

    VERL_MODE = "sync"  # the verl trainer mode whose semantics the subclass runs

    def __init__(self, config):
        # The start-up checks: entropy_verl.main ran them on the driver before Ray; under verl's own main_ppo this is
        # their first run, still before any worker starts (~0.2 s). Returns the parsed entropy_verl block.
        self.entropy_config = validate(config, in_trainer=True)
        print(f"[entropy_verl] objective: {objective(config, self.entropy_config)}", flush=True)
        print(f"[entropy_verl] Ray nodes: {', '.join(ray_node_addresses())}", flush=True)
        self.control = EntropyControl(self.entropy_config)
        self.loss_methods = self.entropy_config.loss_methods
        self.needs_vocab_stats = self.entropy_config.needs(VOCAB_STATS)
        self.step_fields: StepFields | None = None  # the step's per-token fields, read once (_read_step_fields)
        # fault drill (tests, rehearsals): steps whose entropy measurement is replaced by NaN, e.g. "2,4"
        self.nonfinite_drill = {int(s) for s in os.environ.get(NONFINITE_DRILL_ENV, "").split(",") if s.strip()}
        task = self.entropy_config.task
        diagnostics = self.entropy_config.diagnostics
        extract = load_task_function(task.answer_extractor) if task.answer_extractor else None
        self.diagnostics = StepDiagnostics(diagnostics, extract) if diagnostics.enable else None
        estimator = self.entropy_config.estimator
        reads_log_probs = estimator is not None and SEQUENCE_MEAN_OLD_LOG_PROB in estimator[0].needs
        self.needs_step_fields = bool(
            self.control.controllers or self.loss_methods or self.diagnostics or reads_log_probs
        )
        self._val_outputs: list[str] | None = None
        self._state_written_at: int | None = None  # the step whose checkpoint holds the latest entropy_verl state
        # seeds the driver-side token selections (with the step)
        self.selection_seed = int(OmegaConf.select(config, "data.seed", default=0) or 0)
        # verl's loggers are created in this (the trainer's) process: they write under the run directory, our metrics
        # file always among them (the offline tools and the end-of-run summary read it). Under entropy_verl.main the
        # driver has already opened the directory; under verl's own main_ppo this is where it happens.
        with open_dict(config):
            run_state.point_loggers(run_state.open_run_dir(config))
        super().__init__(config)

    def _build_replay_buffer(self):
        # verl branches on trainer_mode (sync or an async mode) and reads trainer.v1.<mode>: this trainer runs in
        # verl's mode VERL_MODE, under its own name.
        own_config = self.config.trainer.v1.get(TRAINER_NAME, {}) or {}
        self.trainer_mode = self.VERL_MODE
        self.parameter_sync_step = parameter_sync_step(self.config)
        replay_buffer = super()._build_replay_buffer()
        replay_buffer.poll_interval = float(own_config.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S))
        # verl waits for rollouts with no deadline; the watchdog fails the run when a worker it waits for has died
        watchdog = self.watchdog = WorkerWatchdog(float(own_config.get("worker_check_s", DEFAULT_WORKER_CHECK_S)))
        wait = replay_buffer._wait_for_next_poll

        def wait_and_check(*args, **kwargs):
            watchdog.check()
            return wait(*args, **kwargs)

        replay_buffer._wait_for_next_poll = wait_and_check
        return replay_buffer

    def step(self, metrics, timing_raw):
        metrics.update(self.control.begin_step(self.global_steps))  # the scheduled settings' values for this step
        try:
            batch = super().step(metrics, timing_raw)
        except (WorkerDied, NonFiniteError):
            raise
        except Exception as failure:
            self.watchdog.name_the_dead(failure)  # a dead worker's step fails in many ways; say which worker died
            raise
        metrics.update(self.control.safety.end_step())  # what was non-finite this step, and the bad steps in a row
        return batch

    def on_init_end(self):
        if self.loss_methods:
            actor_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
            self.actor_rollout_wg.set_loss_fn(
                partial(entropy_aware_loss, config=actor_config, methods=tuple(self.loss_methods))
            )
        super().on_init_end()

    # ---- per step ---------------------------------------------------------------------------------------------

    def _compute_old_log_prob(self, batch, metrics):
        if self.needs_vocab_stats:  # Clip-V: the same forward also returns sum p^2, sum p^2 log p (entropy_verl.engine)
            batch.extra_info[VOCAB_STATS_FLAG] = True
        batch = super()._compute_old_log_prob(self._for_workers(batch), metrics=metrics)
        if self.needs_vocab_stats:
            batch.extra_info[VOCAB_STATS_FLAG] = False  # the actor update does not need them
        if self.needs_step_fields:
            with marked_timer("entropy_step_read", self.timing_raw, color="green"):
                self.step_fields = self._read_step_fields(batch)
            gap = self.step_fields.rollout_log_prob_gap()
            metrics.update({metric_names.rollout_log_prob_gap(k): v for k, v in gap.items()})
            # pi_old is the weights of the last sync (verl's version global_steps - 1) in every mode
            by_weights, continued = self.step_fields.rollout_log_prob_gap_by_weights(self.global_steps - 1)
            metrics.update({metric_names.rollout_log_prob_gap(k): v for k, v in by_weights.items()})
            if self.step_fields.token_versions is not None:
                metrics[metric_names.partial_rollout("continued_tokens_total")] = continued
        # one controller update a step: verl's separate_async trains parameter_sync_step local updates a step and
        # logs each metric aggregated over them by its name (mean, max, min, sum), so the controller measures the
        # step's first mini-batch and every local update of the step uses the coefficients that gives
        first_update = getattr(self, "local_trigger_step", 0) == 0
        if (self.control.controllers or self.diagnostics) and first_update:
            with marked_timer("entropy_control", self.timing_raw, color="green"):  # logged as timing_s/entropy_control
                entropy = self.step_fields.token_mean_entropy()
                metrics[metric_names.TOKEN_MEAN_ENTROPY] = entropy  # verl's actor/entropy follows loss_agg_mode
                if self.global_steps in self.nonfinite_drill:
                    entropy = float("nan")
                metrics.update(self.control.measure(entropy, self.global_steps))
        return batch

    def _for_workers(self, batch):
        """The meta every worker call gets (actor, reference, critic): without the rollout's per-sample records
        (``ROLLOUT_RECORDS``) and the fields only the driver reads (Clip-V's full-length sums). verl's workers fetch
        every field a meta lists, and every field when it lists none. The driver's own reads name their fields, so
        the rest of the step keeps the full meta."""
        fields = self._field_names(batch)
        drop = ROLLOUT_RECORDS | (set(VOCAB_STATS_OUTPUTS) if self.needs_vocab_stats else set())
        return dataclasses.replace(batch, fields=[f for f in fields if f not in drop])

    def _compute_ref_log_prob(self, batch, metrics):
        super()._compute_ref_log_prob(self._for_workers(batch), metrics=metrics)
        return batch  # verl returns the meta it was given: the rest of the step keeps the full one

    def _compute_values(self, batch, metrics):
        super()._compute_values(self._for_workers(batch), metrics=metrics)
        return batch

    def _update_critic(self, batch, metrics):
        super()._update_critic(self._for_workers(batch), metrics=metrics)
        return batch

    def _read_step_fields(self, batch) -> StepFields:
        """The step's per-token fields, read from TransferQueue once and padded once: every driver-side consumer
        (controllers, estimators, selections, diagnostics) shares them. The engine's full-vocabulary sums cover
        prompt + response; they are cut to the response as verl does with the entropy."""
        fields = ["entropy", "old_log_probs", "response_mask"]
        if self.needs_vocab_stats:
            missing = [name for name in VOCAB_STATS_OUTPUTS if name not in batch.fields]
            if missing:
                raise RuntimeError(
                    f"the actor's old-log-prob forward returned no {missing}: the workers did not run "
                    "entropy_verl's vocabulary-statistics engine (VERL_ENGINE_VENDOR is set by entropy_verl.main "
                    "when a method needs it; start runs with python -m entropy_verl.main)"
                )
            fields += list(VOCAB_STATS_OUTPUTS)
        if "rollout_log_probs" in (batch.fields or ()):
            fields.append("rollout_log_probs")
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        for name in VOCAB_STATS_OUTPUTS if self.needs_vocab_stats else ():
            data[name] = response_from_nested(data[name], data["response_mask"])
        padded = data.to_padded_tensor()
        token_versions = None
        if self.VERL_MODE != "sync" and "rollout_log_probs" in fields:  # partial rollout: which weights sampled what
            token_versions = self._read_token_versions(batch, padded["response_mask"])
        return StepFields(
            response_mask=padded["response_mask"].to(bool),
            old_log_probs=padded["old_log_probs"],
            entropy=padded["entropy"],
            nested_response_mask=data["response_mask"],
            rollout_log_probs=padded.get("rollout_log_probs", None),
            token_versions=token_versions,
            **{n: padded.get(n, None) for n in VOCAB_STATS_OUTPUTS},
        )

    @staticmethod
    def _read_token_versions(batch, response_mask: torch.Tensor) -> torch.Tensor | None:
        """(bsz, T) the weights version of each response token, as the hf rollout's resuming client recorded it
        (``VersionRecordingClient``), -1 where it recorded none; None when no sample has a record (other backends)."""
        extra = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        records = [(fields or {}).get(TOKEN_VERSIONS) for fields in extra.pop("extra_fields").tolist()]
        if all(record is None for record in records):
            return None
        versions = torch.full(response_mask.shape, -1, dtype=torch.long)
        for row, record in enumerate(records):
            if record and None not in record:
                n = min(len(record), versions.shape[1])
                versions[row, :n] = torch.tensor(record[:n], dtype=torch.long)
        return versions

    def _whole_step_inputs(self, batch, metrics):
        """What needs the whole step's batch (all ranks' samples), from the step's fields read once and its
        advantages: selection statistics (``scope: step``, broadcast as coefficients), per-token selections (written
        into the batch as fields) and the step's entropy diagnostics (into ``metrics``). Returns (statistics, batch
        meta that carries the new fields)."""
        advantages = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["advantages"])
        ctx = self.step_fields.context(advantages.to_padded_tensor()["advantages"])
        bad = int((~torch.isfinite(valid(ctx, "advantages"))).sum())  # the valid tokens the methods share
        self.control.safety.observe("advantages", bad, self.global_steps, " advantage value(s) of valid tokens")
        generator = torch.Generator().manual_seed(self.selection_seed * 1_000_003 + self.global_steps)
        methods = [(spec, self.control.config_of(spec, cfg)) for spec, cfg in self.loss_methods]
        stats, selections = whole_step_values(ctx, methods, generator)
        if selections:
            nested = {
                SELECTION_PREFIX + name: response_to_nested(values, self.step_fields.nested_response_mask)
                for name, values in selections.items()
            }
            batch = tq.kv_batch_put(
                keys=batch.keys, partition_id=batch.partition_id, fields=TensorDict(nested, batch_size=len(batch))
            )
        first_update = getattr(self, "local_trigger_step", 0) == 0  # measured once a step (_compute_old_log_prob)
        if self.diagnostics and self.control.entropy is not None and first_update:
            with marked_timer("entropy_diagnostics", self.timing_raw, color="green"):
                sources = None
                if len(self.entropy_config.task.data_sources) > 1:  # the entropy per source, too
                    read = tq.kv_batch_get(
                        keys=batch.keys, partition_id=batch.partition_id, select_fields=["data_source"]
                    )
                    sources = [str(source) for source in read.pop("data_source").tolist()]
                metrics.update(self.diagnostics.step(ctx, self.control.entropy, sources))
        return stats, batch

    def _field_names(self, batch) -> list[str]:
        return list(batch.fields if batch.fields is not None else kv_batch_meta2batch_meta(batch).field_names)

    def _guard_rewards(self, batch):
        """Non-finite rewards, before verl turns them into advantages: counted, their rows named (data source and
        dataset index where the batch has them), and handled as ``entropy_verl.safety.nonfinite_reward`` says."""
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["rm_scores"])
        if "rm_scores" not in data.keys():  # verl stores no score for a sample whose reward function returned None
            raise NonFiniteError(
                f"step {self.global_steps}: the reward function returned no score (None) for some of the step's "
                "samples, so verl has no rm_scores to train on; return a number (or NaN, which "
                "entropy_verl.safety.nonfinite_reward handles) for every sample"
            )
        scores = data["rm_scores"]
        values, offsets = scores.values(), scores.offsets()
        bad_tokens = ~torch.isfinite(values)
        if not bad_tokens.any():
            return batch
        rows = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets.diff())[bad_tokens].unique().tolist()
        labels, fields = {}, self._field_names(batch)
        for field in ("data_source", "index"):
            if field in fields:
                read = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=[field])
                labels[field] = read.pop(field).tolist()
        named = list(dict.fromkeys(" #".join(str(v[r]) for v in labels.values()) or f"sample {r}" for r in rows))
        policy = self.entropy_config.safety.nonfinite_reward
        where = f" in {', '.join(named[:10])}{' ...' if len(named) > 10 else ''} (nonfinite_reward={policy})"
        if policy == "fail":
            raise NonFiniteError(f"step {self.global_steps}: {len(rows)} non-finite reward(s){where}")
        self.control.safety.observe("reward", len(rows), self.global_steps, where)
        if policy == "zero":
            fixed = torch.nested.nested_tensor_from_jagged(values.masked_fill(bad_tokens, 0.0), offsets)
            batch = tq.kv_batch_put(
                keys=batch.keys,
                partition_id=batch.partition_id,
                fields=TensorDict({"rm_scores": fixed}, batch_size=len(batch)),
            )
        return batch

    def _compute_advantage(self, batch, metrics):
        """verl's advantage step, after the reward guard; for our estimators, with their config and the per-response
        inputs they need."""
        batch = self._guard_rewards(batch)
        if self.entropy_config.estimator is None:
            return super()._compute_advantage(batch, metrics=metrics)
        spec, cfg = self.entropy_config.estimator
        cfg = self.control.config_of(spec, cfg)
        inputs = {}
        if SEQUENCE_MEAN_OLD_LOG_PROB in spec.needs:
            inputs[SEQUENCE_MEAN_OLD_LOG_PROB] = self.step_fields.sequence_mean_old_log_prob()
        if FINAL_ANSWERS in spec.needs:
            final_answer = load_task_function(self.entropy_config.task.final_answer)
            responses = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["responses"])
            texts = self.tokenizer.batch_decode(
                [r.tolist() for r in responses["responses"].unbind()], skip_special_tokens=True
            )
            inputs[FINAL_ANSWERS] = [final_answer(text) for text in texts]
        if REWARD_COMPONENTS in spec.needs:  # the reward function's dict, stored per sample by verl's reward loop
            extra = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
            infos = [(fields or {}).get("reward_extra_info", {}) for fields in extra.pop("extra_fields").tolist()]
            inputs[REWARD_COMPONENTS] = {key: [info.get(key) for info in infos] for key in set().union(*infos)}
        with estimator_inputs({spec.name: cfg}, **inputs) as estimator_metrics:
            batch = super()._compute_advantage(batch, metrics=metrics)
        metrics.update({metric_names.estimator(k): v for k, v in estimator_metrics.items()})
        return batch

    def _update_actor(self, batch, metrics):
        if self.loss_methods or self.diagnostics:
            with marked_timer("entropy_step_inputs", self.timing_raw, color="green"):
                stats, batch = self._whole_step_inputs(batch, metrics)
                self.control.add_step_stats(stats, self.global_steps)
        self.step_fields = None  # this step's driver-side fields are done with
        if coefficients := self.control.broadcast:
            batch.extra_info[COEFFICIENTS_KEY] = dict(coefficients)
            metrics.update({metric_names.driver_coef(k): v for k, v in coefficients.items()})
        super()._update_actor(self._for_workers(batch), metrics=metrics)
        for kind, keys in (
            ("loss", [k for k in metrics if k.startswith("actor/") and k.endswith("loss")]),
            ("grad_norm", ["actor/grad_norm"]),
        ):
            bad = [k for k in keys if k in metrics and not math.isfinite(float(metrics[k]))]
            # verl skips the optimizer step on a non-finite gradient norm: this step trained nothing
            self.control.safety.observe(kind, len(bad), self.global_steps, f" ({', '.join(bad)})")
        if coefficients:
            metrics.update(self.control.check_workers(metrics))
        return batch  # verl returns the meta it was given: the rest of the step keeps the full one

    # ---- validation: pass@k, distinct correct answers, the entropy-performance law ------------------------------

    def _maybe_log_val_generations(self, inputs, outputs, scores):
        self._val_outputs = list(outputs)  # verl hands the decoded validation samples here, row-aligned with the uids
        return super()._maybe_log_val_generations(inputs=inputs, outputs=outputs, scores=scores)

    def _val_metrics_update(
        self, data_sources, sample_uids, reward_extra_infos_dict, sample_turns, expected_acc_counts=None
    ):
        metrics = super()._val_metrics_update(
            data_sources, sample_uids, reward_extra_infos_dict, sample_turns, expected_acc_counts=expected_acc_counts
        )
        outputs, self._val_outputs = self._val_outputs, None
        if self.diagnostics and outputs is not None and len(outputs) == len(sample_uids):
            metrics.update(
                self.diagnostics.validation(
                    self.global_steps, sample_uids, reward_extra_infos_dict["reward"], outputs, list(data_sources)
                )
            )
        return metrics

    # ---- checkpoints: controller state lives next to verl's checkpoint of the same step (run_state.py) ----------

    def _write_state(self) -> None:
        state = {
            "global_steps": self.global_steps,
            **self.control.state_dict(),
            "diagnostics": self.diagnostics.state_dict() if self.diagnostics else None,
        }
        run_state.write_state(
            run_state.checkpoint_folder(self.config.trainer.default_local_dir, self.global_steps), state
        )
        self._state_written_at = self.global_steps

    def _save_checkpoint(self):
        # Written before verl's save, whose last act is the latest_checkpointed_iteration.txt tracker.
        root = self.config.trainer.default_local_dir
        try:
            if self.control.keeps_state or self.diagnostics:
                self._write_state()
            result = super()._save_checkpoint()
            if keep := self._checkpoints_to_keep():
                run_state.apply_retention(root, self.global_steps, keep)
            return result
        except Exception as exc:  # noqa: BLE001 - any failure: say what failed and what a resume will load
            raise run_state.checkpoint_write_failed(
                run_state.checkpoint_folder(root, self.global_steps), root, exc
            ) from exc

    def _checkpoints_to_keep(self) -> int:
        """How many step folders verl's retention settings keep (0: all), as verl reads them in _save_checkpoint."""
        trainer = self.config.trainer
        if trainer.get("remove_previous_ckpt_in_save", False):
            return 1
        keeps = [trainer.get("max_actor_ckpt_to_keep", None)]
        if self.use_critic:
            keeps.append(trainer.get("max_critic_ckpt_to_keep", None))
        if any(not (isinstance(k, int) and k > 0) for k in keeps):
            return 0  # some role keeps every checkpoint
        return max(keeps)

    def on_validate_end(self):
        # verl checkpoints a step before validating it: add that validation's entropy-law pair to the saved state.
        if self.diagnostics and self._state_written_at == self.global_steps:
            self._write_state()
        return super().on_validate_end()

    def _load_checkpoint(self):
        result = super()._load_checkpoint()
        folder = run_state.resume_folder(self.config.trainer) if self.global_steps > 0 else None  # verl just loaded it
        if folder and (gap := run_state.unlogged_checkpoint(self.config.entropy_verl.run_dir, folder)):
            print(gap, flush=True)
        if folder and (self.control.keeps_state or self.diagnostics):
            try:
                state = run_state.read_state(folder)
            except FileNotFoundError:
                if self.control.controllers:
                    raise FileNotFoundError(
                        f"resuming step {self.global_steps}: no controller state in {folder}"
                    ) from None
                # diagnostics only: a checkpoint from before they existed; start them afresh
                logger.warning(
                    "resuming step %d: no entropy_verl state in %s; diagnostics start afresh", self.global_steps, folder
                )
                return result
            self.control.load_state_dict(state)
            if self.diagnostics and state.get("diagnostics"):
                self.diagnostics.load_state_dict(state["diagnostics"])
            logger.info("restored entropy controllers from %s", folder)
        return result


@register_trainer(TRAINER_NAME)
class EntropySyncTrainer(EntropyControlTrainer, PPOTrainerSync):
    """verl's synchronous trainer (colocated rollout, on-policy) with entropy control."""

    VERL_MODE = "sync"


@register_trainer(TRAINER_MODES["colocate_async"])
class EntropyColocateAsyncTrainer(EntropyControlTrainer, PPOTrainerColocateAsync):
    """verl's colocated asynchronous trainer (partial rollouts across weight updates) with entropy control. The
    controller measures the entropy the trainer recomputes for the batch it trains, under the current weights; the
    batch was sampled by policies up to ``training/off_policy/trajectory_staleness/max`` versions older (verl's)."""

    VERL_MODE = "colocate_async"


@register_trainer(TRAINER_MODES["separate_async"])
class EntropySeparateAsyncTrainer(EntropyControlTrainer, PPOTrainerSeparateAsync):
    """verl's separated asynchronous trainer (rollout on its own resources, weights sent every
    ``parameter_sync_step`` local updates through a checkpoint engine) with entropy control. The controller measures
    the entropy the trainer recomputes for the step's first mini-batch, once a step; the step's local updates all use
    the coefficients it gives."""

    VERL_MODE = "separate_async"

    def _init_resource_pool_mgr(self):
        super()._init_resource_pool_mgr()  # verl's DetachActorWorker, which keeps pi_old when parameter_sync_step > 1
        if self.config.trainer.device != "cpu":
            return
        # on CPU verl's saved pi_old is the live policy (entropy_verl/platform/cpu/detached_actor.py)
        from verl.experimental.separation.engine_workers import DetachActorWorker

        from entropy_verl.platform.cpu.detached_actor import CPUSafeDetachActorWorker

        for role, worker in self.role_worker_mapping.items():
            if worker.__ray_metadata__.modified_class.__ray_actor_class__ is DetachActorWorker:
                self.role_worker_mapping[role] = ray.remote(CPUSafeDetachActorWorker)
