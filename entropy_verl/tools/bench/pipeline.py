"""``python -m entropy_verl.tools.bench.pipeline`` (``make bench-pipeline``): what verl's pipeline costs per training
step over the same work done by a plain torch loop, phase by phase, on the embedded default.

A step of ``python -m entropy_verl.main`` on a CPU runs through Ray: verl's v1 trainer, the agent-loop workers, our
``hf`` rollout server, the reward worker, TransferQueue and an FSDP2 actor over gloo, each a process of its own on
the same cores. This measures how much of a step's time that machinery takes, so that speed work goes where the time
is:

1. The pipeline: ``python -m entropy_verl.main`` for ``--steps`` steps in a subprocess (its output in
   ``<out>/pipeline.log``); verl's own phase timings (``timing_s/gen``, ``old_log_prob``, ``update_actor``,
   ``step``, and every other ``timing_s/*``) from its ``metrics.jsonl``.
2. A bare-torch reference doing the same work in this process, without Ray or verl's trainer: the same model,
   tokenizer, training prompts and reward function, and the sizes of the same composed config (prompts per step,
   samples per prompt, response length, mini- and micro-batches, learning rate, clip range). Per step: KV-cache
   sampling with the rollout server's own engine, scoring, one no-grad forward for the old log-probs, GRPO advantages
   (verl's own ``compute_grpo_outcome_advantage``), then PPO's clipped token-mean loss over the mini-batches with
   gradient accumulation over the micro-batches, AdamW.

Both skip the first ``--warmup`` steps (start-up, first allocations). Results, with the machine, date, commit and
the commands used: ``<out>/results.json`` and ``<out>/results.md``, columns ``phase | pipeline | bare-torch |
ratio``. The reference is always plain GRPO with verl's vanilla clipped loss; a method's extra work is the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from entropy_verl.tools.bench.report import git_commit, header, stamp, write_results

PHASES = ("gen", "old_log_prob", "update_actor", "step")  # the table's rows; other timings go to a secondary list
LOG_PREFIX = "[entropy_verl.tools.bench.pipeline]"


# ---- the bare-torch reference ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceSettings:
    """The sizes and hyper-parameters the reference takes from the composed run config."""

    prompts_per_step: int  # data.train_batch_size
    n: int  # rollout.n
    response_length: int
    temperature: float
    top_k: int
    top_p: float
    mini_batch_prompts: int  # actor.ppo_mini_batch_size counts prompts; verl multiplies it by n
    micro_batch: int  # actor.ppo_micro_batch_size_per_gpu, in samples
    log_prob_micro_batch: int
    ppo_epochs: int
    clip_low: float
    clip_high: float
    norm_adv_by_std: bool
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    clip_grad: float
    seed: int

    @classmethod
    def from_config(cls, config) -> ReferenceSettings:
        actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
        return cls(
            prompts_per_step=int(config.data.train_batch_size),
            n=int(rollout.n),
            response_length=int(rollout.response_length),
            temperature=float(rollout.temperature),
            top_k=int(rollout.top_k),
            top_p=float(rollout.top_p),
            mini_batch_prompts=int(actor.ppo_mini_batch_size),
            micro_batch=int(actor.ppo_micro_batch_size_per_gpu),
            log_prob_micro_batch=int(rollout.log_prob_micro_batch_size_per_gpu),
            ppo_epochs=int(actor.ppo_epochs),
            clip_low=float(actor.clip_ratio_low),
            clip_high=float(actor.clip_ratio_high),
            norm_adv_by_std=bool(config.algorithm.norm_adv_by_std_in_grpo),
            lr=float(actor.optim.lr),
            betas=tuple(float(b) for b in actor.optim.betas),
            weight_decay=float(actor.optim.weight_decay),
            clip_grad=float(actor.optim.clip_grad),  # what verl's FSDP engine clips the gradient norm to
            seed=int(config.data.seed),
        )


@dataclass
class Rollout:
    """One step's samples as training tensors: left-padded prompts, then responses right-padded to the response
    length; each prompt's n samples are consecutive rows."""

    input_ids: torch.Tensor  # [B, prompt_width + response_length]
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    responses: torch.Tensor  # [B, response_length]
    response_mask: torch.Tensor  # [B, response_length], float
    prompt_width: int


def sample_advantages(scores: torch.Tensor, n: int, norm_by_std: bool = True) -> torch.Tensor:
    """Each sample's GRPO outcome advantage [B], by verl's own ``compute_grpo_outcome_advantage`` (each prompt's group
    normalised); ``scores`` [B] holds each prompt's ``n`` samples consecutively."""
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    rewards = scores[:, None]  # verl sums a response's token rewards into its score: one column of scores does
    groups = np.repeat(np.arange(len(scores) // n), n)
    advantages, _ = compute_grpo_outcome_advantage(
        rewards, torch.ones_like(rewards), groups, norm_adv_by_std_in_grpo=norm_by_std
    )
    return advantages[:, 0]


def ppo_clipped_loss(log_prob, old_log_prob, advantages, mask, clip_low: float, clip_high: float, tokens: int):
    """PPO's clipped surrogate summed over the valid tokens and divided by ``tokens``, the mini-batch's token count:
    summed over micro-batches, that is the mini-batch's token mean. ``advantages`` is per sample [B]."""
    ratio = torch.exp(log_prob - old_log_prob)
    adv = advantages[:, None]
    per_token = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip_low, 1 + clip_high))
    return (per_token * mask).sum() / tokens


def assemble(prompts: list[list[int]], responses: list[list[int]], response_length: int, pad_id: int) -> Rollout:
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width + response_length), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        input_ids[row, width - len(prompt) : width] = torch.tensor(prompt)
        input_ids[row, width : width + len(response)] = torch.tensor(response, dtype=torch.long)
        attention[row, width - len(prompt) : width + len(response)] = 1
    return Rollout(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
        responses=input_ids[:, width:],
        response_mask=attention[:, width:].float(),
        prompt_width=width,
    )


def response_log_probs(model, rollout: Rollout, rows: slice, temperature: float):
    """(log-probs of the response tokens, entropies of their distributions) for ``rows``, at the rollout temperature
    as verl's actor computes them (with the entropies: the entropy controllers and diagnostics read them)."""
    logits = model(
        input_ids=rollout.input_ids[rows],
        attention_mask=rollout.attention_mask[rows],
        position_ids=rollout.position_ids[rows],
        use_cache=False,
    ).logits
    # the logits at position t predict token t + 1: those from the last prompt token on predict the response
    log_softmax = torch.log_softmax(logits[:, rollout.prompt_width - 1 : -1].float() / temperature, dim=-1)
    log_prob = log_softmax.gather(-1, rollout.responses[rows].unsqueeze(-1)).squeeze(-1)
    entropy = -(log_softmax.exp() * log_softmax).sum(-1)
    return log_prob, entropy


def _chunks(stop: int, size: int, start: int = 0) -> list[slice]:
    return [slice(first, min(first + size, stop)) for first in range(start, stop, size)]


@contextmanager
def _timed(times: dict[str, float], phase: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        times[phase] = times.get(phase, 0.0) + time.perf_counter() - start


def _read_rows(files) -> list[dict]:
    import pandas as pd

    files = [files] if isinstance(files, str) else list(files)
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).to_dict("records")


class ReferenceLoop:
    """GRPO on one process, step by step; ``step()`` returns the step's phase times in seconds."""

    def __init__(self, config):
        from transformers import AutoModelForCausalLM

        from entropy_verl.config import parse
        from entropy_verl.embedded.tokenizer import load_tokenizer
        from entropy_verl.rollout.hf.engine import HFGenerationEngine, SamplingParams
        from entropy_verl.tasks.reward_check import reward_function

        self.settings = s = ReferenceSettings.from_config(config)
        model_path = config.actor_rollout_ref.model.path
        self.tokenizer = load_tokenizer(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, attn_implementation="sdpa")
        # the rollout server's own sampler: batched, left-padded, KV cache (the model is shared, so no weight sync).
        # It puts the model in eval mode for good; Qwen2 has no dropout, so the updates are the same in it.
        self.engine = HFGenerationEngine(
            self.model, (self.tokenizer.eos_token_id,), self.tokenizer.pad_token_id, seed=s.seed
        )
        self.sampling = SamplingParams(
            max_tokens=s.response_length, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)
        self.score_fn, _ = reward_function(config, parse(config).task.scorer)  # loaded as verl's reward loop loads it
        self.rows = _read_rows(config.data.train_files)
        self.order = torch.randperm(len(self.rows), generator=torch.Generator().manual_seed(s.seed)).tolist()
        self.cursor = 0

    def _next_prompts(self) -> list[dict]:
        count = self.settings.prompts_per_step
        if self.cursor + count > len(self.order):
            self.cursor = 0  # a new epoch, as verl's dataloader starts one
        batch = [self.rows[i] for i in self.order[self.cursor : self.cursor + count]]
        self.cursor += count
        return batch

    def _encode(self, row: dict) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(row["prompt"]), add_generation_prompt=True, tokenize=False)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _score(self, row: dict, response_ids: list[int]) -> float:
        result = self.score_fn(
            data_source=row["data_source"],
            solution_str=self.tokenizer.decode(response_ids, skip_special_tokens=True),
            ground_truth=row["reward_model"]["ground_truth"],
            extra_info=row.get("extra_info"),
        )
        return float(result["score"] if isinstance(result, dict) else result)

    def _generate(self, times: dict[str, float]) -> tuple[Rollout, torch.Tensor]:
        s = self.settings
        rows = [row for row in self._next_prompts() for _ in range(s.n)]
        prompts = [self._encode(row) for row in rows]
        results = self.engine.generate(prompts, [self.sampling] * len(prompts))
        with _timed(times, "reward"):
            scores = torch.tensor([self._score(row, r.token_ids) for row, r in zip(rows, results, strict=True)])
        rollout = assemble(prompts, [r.token_ids for r in results], s.response_length, self.tokenizer.pad_token_id)
        return rollout, scores

    @torch.no_grad()
    def _old_log_probs(self, rollout: Rollout) -> torch.Tensor:
        size, temperature = self.settings.log_prob_micro_batch, self.settings.temperature
        rows = _chunks(len(rollout.responses), size)
        return torch.cat([response_log_probs(self.model, rollout, r, temperature)[0] for r in rows])

    def _update(self, rollout: Rollout, old_log_prob: torch.Tensor, advantages: torch.Tensor) -> None:
        s = self.settings
        for _ in range(s.ppo_epochs):
            for mini in _chunks(len(rollout.responses), s.mini_batch_prompts * s.n):
                self.optimizer.zero_grad(set_to_none=True)
                tokens = max(int(rollout.response_mask[mini].sum()), 1)
                for rows in _chunks(mini.stop, s.micro_batch, mini.start):
                    log_prob, _ = response_log_probs(self.model, rollout, rows, s.temperature)
                    loss = ppo_clipped_loss(
                        log_prob,
                        old_log_prob[rows],
                        advantages[rows],
                        rollout.response_mask[rows],
                        s.clip_low,
                        s.clip_high,
                        tokens,
                    )
                    loss.backward()  # gradients accumulate over the micro-batches
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.clip_grad)
                self.optimizer.step()

    def step(self) -> dict[str, float]:
        times: dict[str, float] = {}
        with _timed(times, "step"):
            # verl's gen includes scoring (its reward workers score inside the agent loop); "reward" is that part
            with _timed(times, "gen"):
                rollout, scores = self._generate(times)
            with _timed(times, "old_log_prob"):
                old_log_prob = self._old_log_probs(rollout)
            with _timed(times, "adv"):
                advantages = sample_advantages(scores, self.settings.n, self.settings.norm_adv_by_std)
            with _timed(times, "update_actor"):
                self._update(rollout, old_log_prob, advantages)
        return times


def run_reference(config, steps: int) -> list[dict[str, float]]:
    """``steps`` steps of the reference loop: each step's phase times."""
    loop = ReferenceLoop(config)
    return [loop.step() for _ in tqdm(range(steps), desc="bare-torch reference", unit="step")]


def reference_caveats(config) -> list[str]:
    """What the pipeline run does that the reference (plain GRPO, vanilla clipped loss) does not."""
    caveats = []
    if config.algorithm.adv_estimator != "grpo":
        caveats.append(f"the pipeline's advantage estimator is {config.algorithm.adv_estimator}, the reference's GRPO")
    if (loss_mode := config.actor_rollout_ref.actor.policy_loss.loss_mode) != "vanilla":
        caveats.append(f"the pipeline's loss_mode is {loss_mode}, the reference's vanilla PPO clip")
    if methods := list(config.entropy_verl.methods or {}):
        caveats.append(f"the pipeline runs the methods {methods}, which the reference does not")
    return caveats


# ---- the pipeline run ------------------------------------------------------------------------------------------------


def pipeline_command(steps: int, run_dir: str, overrides: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "entropy_verl.main",
        f"trainer.total_training_steps={steps}",
        f"entropy_verl.run_dir={run_dir}",
        *overrides,
    ]


def run_pipeline(command: list[str], log: str, checkout: str | None = None) -> float:
    """Run the pipeline with its output in ``log`` (a file: a pipe nobody reads would fill and block it), from
    ``checkout`` (another checkout's ``entropy_verl`` first on the path of the driver and of every Ray worker it
    starts) or from this one; returns its wall time."""
    print(f"{LOG_PREFIX} pipeline run in progress (start-up takes about a minute); log: {log}", flush=True)
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    if checkout:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    with open(log, "w") as f:
        returncode = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=checkout).returncode
    if returncode != 0:
        raise RuntimeError(f"the pipeline run failed (exit code {returncode}); its output is in {log}")
    wall = time.perf_counter() - start
    print(f"{LOG_PREFIX} pipeline run finished in {wall:.0f}s", flush=True)
    return wall


def pipeline_steps(run_dir: str) -> list[dict[str, float]]:
    """Each training step's verl timings ``timing_s/<phase>`` as ``{phase: seconds}``, in step order."""
    from entropy_verl.metric_names import STEP_TIME, TIMING_PREFIX
    from entropy_verl.run_state import load_metrics

    rows = [row for row in load_metrics(run_dir) if STEP_TIME in row]  # not a validation-only row
    return [{k[len(TIMING_PREFIX) :]: v for k, v in row.items() if k.startswith(TIMING_PREFIX)} for row in rows]


# ---- statistics and report -------------------------------------------------------------------------------------------


def timing_stats(per_step: list[dict[str, float]], warmup: int) -> dict[str, dict]:
    """Per phase, over the steps after the first ``warmup``: mean, min, max, stdev (s/step) and the step count."""
    kept = per_step[warmup:]
    if not kept:
        raise ValueError(f"no steps left after the first {warmup} ({len(per_step)} steps in all)")
    stats = {}
    for phase in sorted({phase for step in kept for phase in step}):
        values = [step[phase] for step in kept if phase in step]
        stats[phase] = {
            "mean": statistics.fmean(values),
            "min": min(values),
            "max": max(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "steps": len(values),
        }
    return stats


def comparison(pipeline: dict | None, bare: dict | None, baseline: dict | None = None) -> list[dict]:
    """The table's rows: per phase of PHASES, each side's stats and the ratios of their means to the bare loop's
    (``ratio``: pipeline / bare, ``baseline_ratio``: baseline / bare)."""

    def ratio(side: dict | None, b: dict | None) -> float | None:
        return side["mean"] / b["mean"] if side and b and b["mean"] > 0 else None

    rows = []
    for phase in PHASES:
        p, b, base = (pipeline or {}).get(phase), (bare or {}).get(phase), (baseline or {}).get(phase)
        row = {"phase": phase, "pipeline": p, "bare": b, "ratio": ratio(p, b)}
        if baseline is not None:
            row.update(baseline=base, baseline_ratio=ratio(base, b))
        rows.append(row)
    return rows


def _cell(stats: dict | None) -> str:
    return "-" if stats is None else f"{stats['mean']:.3g} ({stats['min']:.3g}-{stats['max']:.3g})"


def _ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def pipeline_markdown(result: dict) -> str:
    lines = header("verl pipeline vs bare-torch reference, s/step", result)
    lines += [f"{result['steps']} steps, the first {result['warmup']} skipped: mean (min-max) over the rest.", ""]
    baseline = result.get("baseline")
    if baseline:
        lines += [
            f"| phase | baseline ({baseline['git_commit']}) | pipeline (this checkout) | bare-torch | ratio, baseline "
            "/ bare | ratio, pipeline / bare |",
            "|---|---|---|---|---|---|",
        ]
        sides, ratios = ("baseline", "pipeline", "bare"), ("baseline_ratio", "ratio")
    else:
        lines += [
            "| phase | pipeline mean s/step | bare-torch mean s/step | ratio (pipeline / bare) |",
            "|---|---|---|---|",
        ]
        sides, ratios = ("pipeline", "bare"), ("ratio",)
    for row in result["phases"]:
        cells = [_cell(row[side]) for side in sides] + [_ratio(row[key]) for key in ratios]
        lines.append(f"| {row['phase']} | {' | '.join(cells)} |")
    labels = {"pipeline": "pipeline", "bare": "bare-torch"}
    others = [
        f"- {label} `{phase}`: {_cell(stats)}"
        for side, label in labels.items()
        if result[side]
        for phase, stats in result[side]["timings"].items()
        if phase not in PHASES
    ]
    if others:
        lines += ["", "Other timings, mean (min-max) s/step (the reference's `reward` is part of its `gen`, as the "]
        lines += ["pipeline's scoring is part of its `gen`):", "", *others]
    lines += ["", "How it was run:", ""]
    for side in ("baseline", "pipeline"):
        if result.get(side):
            p = result[side]
            where = f"from {p['checkout']}, " if p.get("checkout") else ""
            lines.append(f"- {side}: `{' '.join(p['command'])}` ({where}{p['wall_s']:.0f}s in all; log: {p['log']})")
    b = result["bare"]
    lines.append(
        f"- bare-torch reference: in that process, {b['torch_threads']} torch threads, the run config composed with "
        f"overrides `{' '.join(b['overrides']) or 'none'}`: {json.dumps(b['settings'])}"
    )
    lines += [f"- note: {caveat}" for caveat in b["caveats"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="python -m entropy_verl.tools.bench.pipeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--steps", type=int, default=12, help="training steps of each side (default: %(default)s)")
    parser.add_argument(
        "--warmup", type=int, default=2, help="first steps left out of the means (default: %(default)s)"
    )
    parser.add_argument("--out", default=os.path.join("outputs", "bench_pipeline"))
    parser.add_argument("--skip-pipeline", action="store_true", help="the bare-torch reference only (a quick check)")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="another checkout of this repository (e.g. `git worktree add /tmp/before <commit>`): its pipeline runs "
        "first, in the same sitting, and the table shows both pipelines' ratios to the bare loop (before and after)",
    )
    args = parser.parse_args(own)
    if not 0 <= args.warmup < args.steps:
        parser.error(f"--warmup must be at least 0 and below --steps ({args.steps}), got {args.warmup}")
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "entropy_verl", "main.py")):
        parser.error(f"--baseline {args.baseline}: not a checkout of entropy_verl (no entropy_verl/main.py there)")
    if args.baseline and args.skip_pipeline:
        parser.error("--baseline compares two pipeline runs; it cannot go with --skip-pipeline")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    from entropy_verl.main import compose_run

    config = compose_run(overrides)  # first: a bad override fails now, not after the pipeline run
    result = {
        **stamp(" ".join(["python -m entropy_verl.tools.bench.pipeline", *argv])),
        "steps": args.steps,
        "warmup": args.warmup,
        "pipeline": None,
    }
    baseline = [("baseline", os.path.abspath(args.baseline))] if args.baseline else []
    for side, checkout in [] if args.skip_pipeline else [*baseline, ("pipeline", None)]:
        run_dir = os.path.join(out, f"{side}_run")
        command = pipeline_command(args.steps, run_dir, overrides)
        log = os.path.join(out, f"{side}.log")
        wall = run_pipeline(command, log, checkout)
        timings = timing_stats(pipeline_steps(run_dir), args.warmup)
        result[side] = {"command": command, "log": log, "run_dir": run_dir, "wall_s": wall, "timings": timings}
        if checkout:
            result[side].update(checkout=checkout, git_commit=git_commit(checkout))

    torch.set_num_threads(os.cpu_count() or 1)  # a single process may use every core
    caveats = reference_caveats(config)
    for caveat in caveats:
        print(f"{LOG_PREFIX} note: {caveat}", flush=True)
    per_step = run_reference(config, args.steps)
    result["bare"] = {
        "overrides": overrides,
        "settings": asdict(ReferenceSettings.from_config(config)),
        "torch_threads": torch.get_num_threads(),
        "caveats": caveats,
        "timings": timing_stats(per_step, args.warmup),
        "per_step": per_step,
    }
    result["phases"] = comparison(
        result["pipeline"] and result["pipeline"]["timings"],
        result["bare"]["timings"],
        result["baseline"]["timings"] if "baseline" in result else None,
    )
    write_results(result, pipeline_markdown(result), out, LOG_PREFIX)
    return result


if __name__ == "__main__":
    main()
