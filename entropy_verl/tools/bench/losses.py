"""``python -m entropy_verl.tools.bench.losses`` (``make bench``): what our loss methods, Clip-V's statistics and the
driver's whole-step work cost. On a GPU when there is one (``--device auto``): bf16 autocast and the shapes of the
cluster hardware group; on the CPU otherwise, at sizes a 2-core machine runs in minutes.

1. Losses: each registered loss method's forward + backward (its advantage shaping / token weights / terms plus
   verl's policy loss for its ``loss_mode``) next to verl's policy loss alone on the same tensors. Whole-step
   statistics and selections are computed once beforehand, as the driver does (timed separately, not in the ratio).
2. Clip-V's full-vocabulary statistics (entropy, sum p^2, sum p^2 log p in one chunked pass) next to verl's chunked
   entropy, at the cluster's vocabulary: time and extra peak memory; on a GPU also both under ``torch.compile``.
3. The driver's whole-step work (``trainer/whole_step.py``): the step's per-token fields padded once, every
   registered method's whole-step statistics and token selections, the entropy diagnostics, at 1024 x 8192 and
   4096 x 8192 tokens: time and peak memory, each in a fresh process with the modules already imported.

verl is needed only for verl's own baselines (its policy loss, its entropy): where only torch is installed (an
accelerator machine), those columns say so and ours are still timed. Targets: token-weight losses <= 1.10x verl's
loss, statistics <= 1.3x verl's entropy and at most one chunk of extra peak memory. Results: ``<out>/results.json``
and ``<out>/results.md``, with the machine (the GPU's name), date and commit they were measured on.
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
from contextlib import nullcontext

import torch

from entropy_verl.tools.bench.report import header, stamp, write_results

TARGET_STATS_TIME_RATIO = 1.3
MEASURED_ENTROPY = 0.5  # the step's entropy the controllers see, for the coefficients the terms read


def controller_outputs() -> dict[str, float]:
    """What every registered controller, at its defaults, would broadcast after one step at ``MEASURED_ENTROPY``."""
    import entropy_verl.controllers  # noqa: F401  - registers them (torch alone: no verl needed)
    from entropy_verl import registry

    outputs = {}
    for spec in registry.specs("controller"):
        outputs.update(spec.impl(spec.config_cls()).update(MEASURED_ENTROPY))
    return outputs


DRIVER_SIZES = ((1024, 8192), (4096, 8192))
# per device: (loss batch, loss length, vocab-stats positions, vocabulary, chunk)
SIZES = {"cpu": (64, 1024, 4096, 151_936, 1024), "cuda": (8, 8192, 24_576, 152_064, 2048)}
VERL_MISSING = "verl is not installed here: verl's baseline not measured"
LOG_PREFIX = "[entropy_verl.tools.bench.losses]"


def verl_available() -> bool:
    try:
        import verl  # noqa: F401
    except ImportError:
        return False
    return True


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, repeats: int, device: str = "cpu") -> float:
    fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _tensors(batch: int, length: int, device: str = "cpu", seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=gen)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    old_log_prob = -torch.rand(batch, length, generator=gen) * 3
    advantages = torch.randn(batch, 1, generator=gen).expand(batch, length).contiguous() * mask
    old_entropy = torch.rand(batch, length, generator=gen) * 2
    sum_p2 = torch.rand(batch, length, generator=gen) * 0.9 + 0.05  # Clip-V's vocabulary sums, in their ranges
    sum_p2_logp = sum_p2 * -torch.rand(batch, length, generator=gen) * 3
    return tuple(t.to(device) for t in (old_log_prob, advantages, mask, old_entropy, sum_p2, sum_p2_logp))


# ---- 1. losses --------------------------------------------------------------------------------------------------


def bench_losses(batch: int, length: int, repeats: int, device: str) -> list[dict]:
    import entropy_verl.losses  # noqa: F401  - registers the loss methods
    from entropy_verl import registry
    from entropy_verl.losses import LossContext, apply_loss_methods, apply_loss_terms

    with_verl = verl_available()
    if with_verl:
        from verl.trainer.ppo.core_algos import get_policy_loss_fn
        from verl.workers.config import FSDPActorConfig

        config = FSDPActorConfig(strategy="fsdp2", ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1, rollout_n=1)
    old_log_prob, advantages, mask, old_entropy, sum_p2, sum_p2_logp = _tensors(batch, length, device)
    autocast = torch.autocast("cuda", torch.bfloat16) if device == "cuda" else nullcontext()

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
            coefficients=controller_outputs(),
            step_stats=step_stats,
            selections=selections,
        )
        with autocast:
            _, weights, _ = apply_loss_methods(ctx, methods)
            loss = apply_loss_terms(ctx, methods)[0]
            if with_verl:
                loss = (
                    loss
                    + get_policy_loss_fn(loss_mode)(
                        old_log_prob=old_log_prob,
                        log_prob=log_prob,
                        advantages=ctx.advantages,
                        response_mask=mask,
                        loss_agg_mode="token-mean",
                        config=config,
                        rollout_is_weights=weights,
                    )[0]
                )
            elif weights is not None:  # our part only: the weights must still reach the gradient
                loss = loss + (weights * ctx.advantages * log_prob).sum()
        if torch.is_tensor(loss) and loss.requires_grad:
            loss.backward()

    def vanilla_of(loss_mode):  # re-measured next to each method, against the loss_mode the method runs with
        return _median_time(lambda: run([], loss_mode, {}, {}), repeats, device) if with_verl else None

    base = vanilla_of("vanilla")
    rows = [
        {
            "method": "vanilla (verl)",
            "kind": "-",
            "ms": base * 1e3 if with_verl else None,
            "ratio": 1.0 if with_verl else None,
            "driver_ms": 0.0,
        }
    ]
    for spec in registry.specs(*registry.LOSS_KINDS):  # every registered loss method, with its paper's defaults
        cfg = spec.config_cls()
        whole_step = LossContext.of_sampling_policy(old_log_prob, advantages, mask, old_entropy, sum_p2, sum_p2_logp)
        start = time.perf_counter()  # what the driver computes once per step for the method
        step_stats = {spec.name: spec.step_stats(whole_step, cfg)} if spec.step_stats else {}
        generator = torch.Generator(device=device).manual_seed(0)
        selections = {spec.name: spec.step_selection(whole_step, cfg, generator)} if spec.step_selection else {}
        driver = time.perf_counter() - start
        loss_mode = spec.loss_mode or "vanilla"
        t = _median_time(lambda: run([(spec, cfg)], loss_mode, step_stats, selections), repeats, device)  # noqa: B023
        reference = vanilla_of(loss_mode)
        rows.append(
            {
                "method": spec.name,
                "kind": spec.kind,
                "loss_mode": loss_mode,
                "ms": t * 1e3,
                "ratio": t / reference if reference else None,
                "driver_ms": driver * 1e3,
            }
        )
    return rows


# ---- 2. Clip-V's statistics vs verl's entropy ---------------------------------------------------------------------


def _peak_rss_bytes() -> int:
    """This process's resident-set high-water mark (VmHWM). Not getrusage's ru_maxrss: Linux carries that across
    execve, so a child started from a large parent would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: best effort


def _logits(tokens: int, vocab: int, device: str) -> torch.Tensor:
    """Logits as the actor's forward makes them: float32 on the CPU, bf16 under autocast on a GPU."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    logits = torch.empty(tokens, vocab, dtype=dtype, device=device)
    return logits.normal_(generator=torch.Generator(device=device).manual_seed(0))  # no temporaries


def _passes(chunk: int, compiled: bool) -> dict:
    """The two passes compared: verl's chunked entropy, our statistics."""
    from entropy_verl.engine.vocab_stats import entropy_and_vocab_stats

    passes = {"stats": lambda x: entropy_and_vocab_stats(x, chunk_size=chunk)}
    if verl_available():
        import verl.utils.torch_functional as verl_F

        passes["entropy"] = lambda x: verl_F.entropy_from_logits_with_chunking(x, chunk_size=chunk)
    if compiled:
        passes = {name: torch.compile(fn) for name, fn in passes.items()}
    return passes


def _memory_probe(which: str, tokens: int, vocab: int, chunk: int) -> dict:
    """Run in a fresh process on the CPU: peak resident memory added by one pass over the logits."""
    logits = _logits(tokens, vocab, "cpu")
    fn = _passes(chunk, compiled=False)[which]
    before = _peak_rss_bytes()
    fn(logits)
    return {"peak_extra_bytes": _peak_rss_bytes() - before}


def _cuda_peak_extra_bytes(fn, logits: torch.Tensor) -> int:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn(logits)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def _cpu_peak_extra_bytes(which: str, tokens: int, vocab: int, chunk: int) -> int:
    args = ["--memory-probe", which, "--vocab-tokens", str(tokens), "--vocab", str(vocab), "--chunk", str(chunk)]
    out = subprocess.run(
        [sys.executable, "-m", "entropy_verl.tools.bench.losses", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_extra_bytes"]


def bench_vocab_stats(tokens: int, vocab: int, chunk: int, repeats: int, device: str) -> dict:
    logits = _logits(tokens, vocab, device)
    result = {
        "tokens": tokens,
        "vocab": vocab,
        "chunk": chunk,
        "logits_dtype": str(logits.dtype).replace("torch.", ""),
        "one_chunk_mb": chunk * vocab * 4 / 2**20,
        "modes": {},
    }
    for mode in ("eager", "compiled") if device == "cuda" else ("eager",):
        try:
            passes = _passes(chunk, compiled=mode == "compiled")
            row = {
                f"{name}_ms": _median_time(lambda fn=fn: fn(logits), repeats, device) * 1e3
                for name, fn in passes.items()
            }
            if device == "cuda":
                row.update(
                    {f"{name}_peak_extra_mb": _cuda_peak_extra_bytes(fn, logits) / 2**20 for name, fn in passes.items()}
                )
        except Exception as exc:  # noqa: BLE001 - a compile failure is a result to report, not a crash
            row = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        result["modes"][mode] = row
    if device == "cpu":  # resident-set peaks, each pass in a fresh process (the logits freed here first)
        del logits
        row = result["modes"]["eager"]
        for name in [n[: -len("_ms")] for n in list(row) if n.endswith("_ms")]:
            row[f"{name}_peak_extra_mb"] = _cpu_peak_extra_bytes(name, tokens, vocab, chunk) / 2**20
    for row in result["modes"].values():
        if "entropy_ms" in row:
            row["time_ratio"] = row["stats_ms"] / row["entropy_ms"]
            row["extra_over_entropy_mb"] = row["stats_peak_extra_mb"] - row["entropy_peak_extra_mb"]
    return result


# ---- 3. the driver's whole-step work ----------------------------------------------------------------------------


def _nested_step(batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The step's per-token fields as TransferQueue hands them to the driver: jagged (every response full here, the
    largest step of that shape)."""
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.arange(batch + 1) * length

    def jagged(values):
        return torch.nested.nested_tensor_from_jagged(values, offsets, max_seqlen=length)

    n = batch * length
    sum_p2 = torch.rand(n, generator=gen) * 0.9 + 0.05
    fields = {
        "response_mask": torch.ones(n),
        "old_log_probs": -torch.rand(n, generator=gen) * 4,
        "entropy": torch.rand(n, generator=gen) * 3,
        "sum_p2": sum_p2,
        "sum_p2_logp": sum_p2 * -torch.rand(n, generator=gen) * 3,
        "advantages": torch.randint(0, 2, (batch, 1), generator=gen)
        .float()
        .mul(2)
        .sub(1)
        .expand(batch, length)
        .flatten(),
    }
    return {k: jagged(v) for k, v in fields.items()}


def _pad(nested: dict, names) -> dict:
    return {k: torch.nested.to_padded_tensor(nested[k], 0.0) for k in names}


def driver_step(nested: dict) -> None:
    """One step's driver-side work as the trainer does it: the fields padded once, every method's whole-step values,
    the diagnostics."""
    import entropy_verl.losses  # noqa: F401
    from entropy_verl import registry
    from entropy_verl.diagnostics.token_stats import step_diagnostics
    from entropy_verl.trainer.whole_step import StepFields, whole_step_values

    methods = [(s, s.config_cls()) for s in registry.specs(*registry.LOSS_KINDS) if s.step_stats or s.step_selection]
    padded = _pad(nested, nested)
    fields = StepFields(
        padded["response_mask"].bool(),
        padded["old_log_probs"],
        padded["entropy"],
        padded["sum_p2"],
        padded["sum_p2_logp"],
    )
    fields.token_mean_entropy()
    ctx = fields.context(padded["advantages"])
    whole_step_values(ctx, methods, torch.Generator().manual_seed(0))
    step_diagnostics(ctx)


def _driver_probe(batch: int, length: int) -> dict:
    """Run in a fresh process: time and peak resident memory of one step's driver work (the fields as TQ hands them
    are made first, and the modules imported, as a running trainer has them: neither is counted)."""
    import entropy_verl.diagnostics.token_stats  # noqa: F401
    import entropy_verl.losses  # noqa: F401
    import entropy_verl.trainer.whole_step  # noqa: F401

    nested = _nested_step(batch, length)
    before = _peak_rss_bytes()
    start = time.perf_counter()
    driver_step(nested)
    return {"s": time.perf_counter() - start, "peak_extra_mb": (_peak_rss_bytes() - before) / 2**20}


def bench_driver(sizes) -> list[dict]:
    rows = []
    for batch, length in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "entropy_verl.tools.bench.losses", "--driver-probe", f"{batch}x{length}"],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append({"tokens": f"{batch} x {length}", **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


# ---- report -------------------------------------------------------------------------------------------------------


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def losses_markdown(result: dict) -> str:
    lines = header("entropy_verl benchmark", result)
    if not result["verl"]:
        lines += [f"{VERL_MISSING} (its policy loss, its entropy).", ""]
    autocast = ", bf16 autocast" if result["device"] == "cuda" else ""
    lines += [
        f"## Loss forward + backward, {result['batch']} x {result['length']} tokens{autocast} (median of "
        f"{result['repeats']})",
        "",
        "| method | kind | ms | vs verl's loss alone (same loss_mode) | driver-side ms (once per step) |",
        "|---|---|---|---|---|",
    ]
    for row in result["losses"]:
        mode = f" ({row['loss_mode']})" if row.get("loss_mode", "vanilla") != "vanilla" else ""
        lines.append(
            f"| {row['method']}{mode} | {row['kind']} | {_fmt(row['ms'], '.2f')} | {_fmt(row['ratio'], '.2f')}x "
            f"| {row['driver_ms']:.1f} |"
        )
    v = result["vocab_stats"]
    lines += [
        "",
        f"## Clip-V statistics vs verl's entropy: {v['tokens']} positions x vocabulary {v['vocab']} "
        f"({v['logits_dtype']} logits), chunk {v['chunk']} (one chunk of float32 = {v['one_chunk_mb']:.0f} MiB)",
        "",
        "| mode | verl entropy ms | statistics ms | ratio | verl entropy extra MiB | statistics extra MiB |",
        "|---|---|---|---|---|---|",
    ]
    for mode, row in v["modes"].items():
        if "error" in row:
            lines.append(f"| {mode} | {row['error']} | | | | |")
            continue
        lines.append(
            f"| {mode} | {_fmt(row.get('entropy_ms'), '.0f')} | {row['stats_ms']:.0f} | "
            f"{_fmt(row.get('time_ratio'), '.2f')}x | {_fmt(row.get('entropy_peak_extra_mb'), '.0f')} | "
            f"{_fmt(row.get('stats_peak_extra_mb'), '.0f')} |"
        )
    lines += ["", f"Targets: time ratio <= {TARGET_STATS_TIME_RATIO}x, extra memory over verl's entropy <= one chunk."]
    d = result["diagnostics"]
    lines += [
        "",
        f"## Per-step entropy diagnostics, {result['batch']} x {result['length']} ({d['tokens']} valid tokens)",
        "",
        f"{d['metrics']} metrics in {d['ms']:.1f} ms (median of {result['repeats']}), once per step on the driver.",
    ]
    if result.get("driver"):
        lines += [
            "",
            "## The driver's whole-step work (fields padded, every method's statistics and selections, the "
            "diagnostics)",
            "",
            "| tokens | s | peak extra MiB |",
            "|---|---|---|",
        ]
        lines += [f"| {row['tokens']} | {row['s']:.2f} | {row['peak_extra_mb']:.0f} |" for row in result["driver"]]
    return "\n".join(lines) + "\n"


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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--batch", type=int, help="loss batch (default: 64 on CPU, 8 on GPU)")
    parser.add_argument("--length", type=int, help="loss response length (default: 1024 on CPU, 8192 on GPU)")
    parser.add_argument("--vocab", type=int, help="vocabulary (default: 151,936 on CPU, 152,064 on GPU)")
    parser.add_argument(
        "--vocab-tokens",
        type=int,
        help="positions of the statistics pass (4,096 CPU, 24,576 GPU: the cluster base's log-prob micro-batch)",
    )
    parser.add_argument("--chunk", type=int, help="positions per chunk (1,024 CPU, 2,048 GPU: verl's default)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of the vocabulary-statistics pass")
    parser.add_argument("--loss-repeats", type=int, default=100, help="timed repeats of each loss (a few ms each)")
    parser.add_argument(
        "--driver-sizes",
        default=",".join(f"{b}x{t}" for b, t in DRIVER_SIZES),
        help="responses x tokens of the driver section, comma-separated; '' skips it (default: %(default)s)",
    )
    parser.add_argument("--out", default=os.path.join("outputs", "bench"))
    parser.add_argument("--memory-probe", choices=["entropy", "stats"], help=argparse.SUPPRESS)
    parser.add_argument("--driver-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(_memory_probe(args.memory_probe, args.vocab_tokens, args.vocab, args.chunk)))
        return {}
    if args.driver_probe:
        batch, length = map(int, args.driver_probe.split("x"))
        print(json.dumps(_driver_probe(batch, length)))
        return {}
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    batch, length, tokens, vocab, chunk = (
        given if given is not None else default
        for given, default in zip(
            (args.batch, args.length, args.vocab_tokens, args.vocab, args.chunk), SIZES[device], strict=True
        )
    )
    torch.manual_seed(0)
    if not verl_available():
        print(f"{LOG_PREFIX} {VERL_MISSING}: its policy loss and entropy are left out of the comparisons")
    command = " ".join(["python -m entropy_verl.tools.bench.losses", *(sys.argv[1:] if argv is None else argv)])
    result = {
        **stamp(command, device),
        "device": device,
        "verl": verl_available(),
        "batch": batch,
        "length": length,
        "repeats": args.loss_repeats,
        "losses": bench_losses(batch, length, args.loss_repeats, device),
        "vocab_stats": bench_vocab_stats(tokens, vocab, chunk, args.repeats, device),
        "diagnostics": bench_diagnostics(batch, length, args.loss_repeats),
        "driver": bench_driver([tuple(map(int, size.split("x"))) for size in args.driver_sizes.split(",") if size]),
    }
    write_results(result, losses_markdown(result), args.out, LOG_PREFIX)
    return result


if __name__ == "__main__":
    main()
