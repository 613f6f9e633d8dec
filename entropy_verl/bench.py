"""``python -m entropy_verl.bench`` (``make bench``): what our loss methods and Clip-V's statistics cost.

1. Each loss method's forward + backward time relative to verl's vanilla policy loss on the same (64 x 1024) tensors:
   the method's advantage shaping / token weights / terms plus verl's policy loss for its ``loss_mode``. Whole-step
   statistics and selections are computed once beforehand, as the driver does (timed separately, not in the ratio).
2. Full-vocabulary statistics for Clip-V (entropy, sum p^2, sum p^2 log p in one chunked pass) relative to verl's
   chunked entropy alone, at a realistic vocabulary: time, and extra peak memory (resident set of a fresh process).
3. The per-step entropy diagnostics (``diagnostics/token_stats.step_diagnostics``: quantiles, Cov(logp, A), S, the
   predicted change) on the same whole-step tensors, computed once per step on the driver.

Ratios compare with verl's policy loss alone for the same ``loss_mode`` (``pg_unclipped`` for KL-Cov/SENT).
Targets (the zoo issue): token-weight losses <= 1.10x vanilla; statistics <= 1.3x entropy-only time and at most one
chunk of extra peak memory. Results go to ``<out>/results.json`` and ``<out>/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

TARGET_WEIGHT_RATIO = 1.10
TARGET_STATS_TIME_RATIO = 1.3

COEFFICIENTS = {"alpha": -0.5, "entropy_coef": 1e-3, "pos_adv_lambda": 0.5}  # what the controllers would broadcast


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _tensors(batch: int, length: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=gen)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    old_log_prob = -torch.rand(batch, length, generator=gen) * 3
    advantages = torch.randn(batch, 1, generator=gen).expand(batch, length).contiguous() * mask
    old_entropy = torch.rand(batch, length, generator=gen) * 2
    sum_p2 = torch.rand(batch, length, generator=gen) * 0.9 + 0.05  # Clip-V's vocabulary sums, in their ranges
    sum_p2_logp = sum_p2 * -torch.rand(batch, length, generator=gen) * 3
    return old_log_prob, advantages, mask, old_entropy, sum_p2, sum_p2_logp


def bench_losses(batch: int, length: int, repeats: int) -> list[dict]:
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.workers.config import FSDPActorConfig

    from entropy_verl import registry
    from entropy_verl.config import load_registry
    from entropy_verl.losses import LossContext, apply_loss_methods, apply_loss_terms

    config = FSDPActorConfig(strategy="fsdp2", ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1, rollout_n=1)
    old_log_prob, advantages, mask, old_entropy, sum_p2, sum_p2_logp = _tensors(batch, length)

    def run(methods, loss_mode, step_stats, selections):
        log_prob = (old_log_prob + 0.01).requires_grad_()
        entropy = old_entropy.clone().requires_grad_()
        ctx = LossContext(
            log_prob=log_prob,
            old_log_prob=old_log_prob,
            advantages=advantages.clone(),
            response_mask=mask,
            entropy=entropy,
            old_entropy=old_entropy,
            coefficients=dict(COEFFICIENTS),
            step_stats=step_stats,
            selections=selections,
        )
        _, weights, _ = apply_loss_methods(ctx, methods)
        loss, _ = get_policy_loss_fn(loss_mode)(
            old_log_prob=old_log_prob,
            log_prob=log_prob,
            advantages=ctx.advantages,
            response_mask=mask,
            loss_agg_mode="token-mean",
            config=config,
            rollout_is_weights=weights,
        )
        loss = loss + apply_loss_terms(ctx, methods)[0]
        loss.backward()

    def vanilla_of(loss_mode):  # re-measured next to each method, against the loss_mode the method runs with
        return _median_time(lambda: run([], loss_mode, {}, {}), repeats)

    rows = [
        {"method": "vanilla (verl)", "kind": "-", "ms": vanilla_of("vanilla") * 1e3, "ratio": 1.0, "driver_ms": 0.0}
    ]
    load_registry()
    for spec in registry.specs(*registry.LOSS_KINDS):  # every registered loss method, with its paper's defaults
        cfg = spec.config_cls()
        whole_step = LossContext.of_sampling_policy(old_log_prob, advantages, mask, old_entropy, sum_p2, sum_p2_logp)
        start = time.perf_counter()  # what the driver computes once per step for the method
        step_stats = {spec.name: spec.step_stats(whole_step, cfg)} if spec.step_stats else {}
        selections = (
            {spec.name: spec.step_selection(whole_step, cfg, torch.Generator().manual_seed(0))}
            if spec.step_selection
            else {}
        )
        driver = time.perf_counter() - start
        loss_mode = spec.loss_mode or "vanilla"
        t = _median_time(lambda: run([(spec, cfg)], loss_mode, step_stats, selections), repeats)  # noqa: B023
        base = vanilla_of(loss_mode)
        rows.append(
            {
                "method": spec.name,
                "kind": spec.kind,
                "loss_mode": loss_mode,
                "ms": t * 1e3,
                "ratio": t / base,
                "driver_ms": driver * 1e3,
            }
        )
    return rows


def bench_diagnostics(batch: int, length: int, repeats: int) -> dict:
    from entropy_verl.diagnostics.token_stats import step_diagnostics
    from entropy_verl.losses import LossContext

    old_log_prob, advantages, mask, old_entropy, _, _ = _tensors(batch, length)
    ctx = LossContext.of_sampling_policy(old_log_prob, advantages, mask, old_entropy)
    return {
        "tokens": int(mask.sum()),
        "ms": _median_time(lambda: step_diagnostics(ctx), repeats) * 1e3,
        "metrics": len(step_diagnostics(ctx)),
    }


def _peak_rss_bytes() -> int:
    """This process's resident-set high-water mark (VmHWM). Not getrusage's ru_maxrss: Linux carries that across
    execve, so a child started from a large parent would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: best effort


def _memory_probe(which: str, tokens: int, vocab: int, chunk: int) -> dict:
    """Run in a fresh process: peak resident memory added by one pass over the logits."""
    import verl.utils.torch_functional as verl_F

    from entropy_verl.engine.vocab_stats import entropy_and_vocab_stats

    logits = torch.empty(tokens, vocab).normal_(generator=torch.Generator().manual_seed(0))  # no temporaries
    fn = {
        "entropy": lambda: verl_F.entropy_from_logits_with_chunking(logits, chunk_size=chunk),
        "stats": lambda: entropy_and_vocab_stats(logits, chunk_size=chunk),
    }[which]
    before = _peak_rss_bytes()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return {"peak_extra_bytes": _peak_rss_bytes() - before, "first_call_s": elapsed}


def bench_vocab_stats(tokens: int, vocab: int, chunk: int, repeats: int) -> dict:
    import verl.utils.torch_functional as verl_F

    from entropy_verl.engine.vocab_stats import entropy_and_vocab_stats

    logits = torch.empty(tokens, vocab).normal_(generator=torch.Generator().manual_seed(0))
    entropy_s = _median_time(lambda: verl_F.entropy_from_logits_with_chunking(logits, chunk_size=chunk), repeats)
    stats_s = _median_time(lambda: entropy_and_vocab_stats(logits, chunk_size=chunk), repeats)
    logits = None  # frees the logits before the memory probes (the lambdas above are done with them)
    memory = {}
    for which in ("entropy", "stats"):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "entropy_verl.bench",
                "--memory-probe",
                which,
                "--vocab-tokens",
                str(tokens),
                "--vocab",
                str(vocab),
                "--chunk",
                str(chunk),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        memory[which] = json.loads(out.stdout.strip().splitlines()[-1])["peak_extra_bytes"]
    chunk_bytes = chunk * vocab * 4
    return {
        "tokens": tokens,
        "vocab": vocab,
        "chunk": chunk,
        "entropy_ms": entropy_s * 1e3,
        "stats_ms": stats_s * 1e3,
        "time_ratio": stats_s / entropy_s,
        "entropy_peak_extra_mb": memory["entropy"] / 2**20,
        "stats_peak_extra_mb": memory["stats"] / 2**20,
        "extra_over_entropy_mb": (memory["stats"] - memory["entropy"]) / 2**20,
        "one_chunk_mb": chunk_bytes / 2**20,
    }


def to_markdown(result: dict) -> str:
    lines = [
        f"# entropy_verl benchmark ({result['machine']})",
        "",
        f"Command: `{result['command']}`",
        "",
        f"## Loss forward + backward, {result['batch']} x {result['length']} tokens (median of {result['repeats']})",
        "",
        "| method | kind | ms | vs verl's loss alone (same loss_mode) | driver-side ms (once per step) |",
        "|---|---|---|---|---|",
    ]
    for row in result["losses"]:
        mode = f" ({row['loss_mode']})" if row.get("loss_mode", "vanilla") != "vanilla" else ""
        lines.append(
            f"| {row['method']}{mode} | {row['kind']} | {row['ms']:.2f} | {row['ratio']:.2f}x "
            f"| {row['driver_ms']:.1f} |"
        )
    v = result["vocab_stats"]
    lines += [
        "",
        f"## Clip-V statistics vs entropy alone: {v['tokens']} positions x vocabulary {v['vocab']}, chunk {v['chunk']}",
        "",
        "| | ms | peak extra memory (MiB) |",
        "|---|---|---|",
        f"| verl entropy (chunked) | {v['entropy_ms']:.0f} | {v['entropy_peak_extra_mb']:.0f} |",
        f"| entropy + sum p^2 + sum p^2 log p | {v['stats_ms']:.0f} | {v['stats_peak_extra_mb']:.0f} |",
        "",
        f"Time ratio {v['time_ratio']:.2f}x (target <= {TARGET_STATS_TIME_RATIO}x); extra peak memory over entropy "
        f"{v['extra_over_entropy_mb']:.0f} MiB vs one chunk of logits {v['one_chunk_mb']:.0f} MiB.",
    ]
    d = result["diagnostics"]
    lines += [
        "",
        f"## Per-step entropy diagnostics, {result['batch']} x {result['length']} ({d['tokens']} valid tokens)",
        "",
        f"{d['metrics']} metrics in {d['ms']:.1f} ms (median of {result['repeats']}), once per step on the driver.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--vocab-tokens", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of the vocabulary-statistics pass")
    parser.add_argument("--loss-repeats", type=int, default=100, help="timed repeats of each loss (a few ms each)")
    parser.add_argument("--out", default=os.path.join("outputs", "bench"))
    parser.add_argument("--memory-probe", choices=["entropy", "stats"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(_memory_probe(args.memory_probe, args.vocab_tokens, args.vocab, args.chunk)))
        return
    torch.manual_seed(0)
    result = {
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "command": "python -m entropy_verl.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "batch": args.batch,
        "length": args.length,
        "repeats": args.loss_repeats,
        "losses": bench_losses(args.batch, args.length, args.loss_repeats),
        "vocab_stats": bench_vocab_stats(args.vocab_tokens, args.vocab, args.chunk, args.repeats),
        "diagnostics": bench_diagnostics(args.batch, args.length, args.loss_repeats),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    markdown = to_markdown(result)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown)
    print(markdown)
    print(f"[entropy_verl] benchmark written to {os.path.abspath(args.out)}/results.{{json,md}}")


if __name__ == "__main__":
    main()
