"""Offline, deterministic, cached builder of the project's embedded default.

The embedded default is what runs when no model or dataset is configured: a ~0.86M-parameter Qwen2
warm-started on countdown-3 (see :mod:`entropy_verl.tasks.countdown`) plus train/val parquet files in
verl's RL format. Nothing is downloaded; everything is generated from fixed seeds.

Layout under the cache root::

    <root>/model/          ordinary HF model dir (config, safetensors, tokenizer files)
    <root>/data/train.parquet
    <root>/data/val.parquet
    <root>/manifest.json   build parameters, SFT metrics, timings; written last

The root is built in a temporary sibling directory and renamed into place, so a crashed or concurrent
build never leaves a half-written root that looks valid.

Command line: ``python -m entropy_verl.embedded.build [--root R] [--force]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from entropy_verl.embedded.evaluate import evaluate  # re-exported: reusable after RL as well
from entropy_verl.embedded.model import count_parameters, make_model
from entropy_verl.embedded.sft import SFTConfig, torch_threads, train_sft
from entropy_verl.embedded.tokenizer import build_tokenizer
from entropy_verl.tasks import countdown

CACHE_ENV = "ENTROPY_VERL_CACHE"
BUILD_NAME = "embedded-v1"  # bump when the recipe changes so old caches are not reused
MANIFEST = "manifest.json"
MODEL_SUBDIR = "model"
TRAIN_FILE = os.path.join("data", "train.parquet")
VAL_FILE = os.path.join("data", "val.parquet")
# Files whose presence, with the manifest, marks a complete build.
_REQUIRED = (
    os.path.join(MODEL_SUBDIR, "config.json"),
    os.path.join(MODEL_SUBDIR, "model.safetensors"),
    os.path.join(MODEL_SUBDIR, "tokenizer_config.json"),
    TRAIN_FILE,
    VAL_FILE,
    MANIFEST,
)


@dataclass(frozen=True)
class EmbeddedPaths:
    """Where a built embedded default lives."""

    model_dir: str
    train_parquet: str
    val_parquet: str
    root: str

    @property
    def manifest(self) -> str:
        return os.path.join(self.root, MANIFEST)


@dataclass(frozen=True)
class BuildParams:
    """Everything of ours that determines the build's content; stored in the manifest to validate the cache. The
    libraries (transformers' initialisation) and the float kernels decide it too: ``content_digest`` tells builds
    apart."""

    seed: int = 0
    sft_steps: int = SFTConfig.steps
    sft_batch_size: int = SFTConfig.batch_size
    n_train: int = 4096
    n_val: int = 256
    n_eval: int = 256  # validation prompts used for the manifest metrics
    eval_temperature: float = 1.0
    num_threads: int = 2  # float reductions depend on the thread count; fixing it fixes the weights


def default_root() -> str:
    """``$ENTROPY_VERL_CACHE/embedded-v1`` if the variable is set, else ``~/.cache/entropy_verl/embedded-v1``."""
    base = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "entropy_verl")
    return os.path.abspath(os.path.expanduser(os.path.join(base, BUILD_NAME)))


def paths_for(root: str) -> EmbeddedPaths:
    return EmbeddedPaths(
        model_dir=os.path.join(root, MODEL_SUBDIR),
        train_parquet=os.path.join(root, TRAIN_FILE),
        val_parquet=os.path.join(root, VAL_FILE),
        root=root,
    )


def read_manifest(root: str) -> dict | None:
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_complete(root: str, params: BuildParams) -> bool:
    """True if ``root`` holds a finished build made with ``params``."""
    if not all(os.path.isfile(os.path.join(root, rel)) for rel in _REQUIRED):
        return False
    manifest = read_manifest(root)
    return manifest is not None and manifest.get("params") == asdict(params)


def content_digest(root: str) -> str:
    """A digest of what a build holds: the weight file and the data's rows (not the parquet bytes, which carry the
    writer's version). Equal digests: the same initial policy and the same prompts. The same ``BuildParams`` give
    equal digests on one machine, but another transformers (its weight initialisation) or other float kernels give
    another policy, so runs meant to be paired across machines compare digests (measured: 2026-12-07's build with
    transformers 5.10.4 starts GRPO at seed 1 at 0.554 nats/token over steps 1-10, an earlier session's at
    0.603-0.612, docs/cpu-pipeline-profile.md)."""
    import hashlib

    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    with open(os.path.join(root, MODEL_SUBDIR, "model.safetensors"), "rb") as f:
        digest.update(f.read())
    for rel in (TRAIN_FILE, VAL_FILE):
        rows = pq.read_table(os.path.join(root, rel)).to_pylist()
        digest.update(json.dumps(rows, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"[entropy_verl.embedded] {msg}", file=sys.stderr, flush=True)


def _build_into(out: str, params: BuildParams, show_progress: bool) -> dict:
    """Build the full embedded default into the empty directory ``out``; returns the manifest."""
    import torch

    t_start = time.perf_counter()
    paths = paths_for(out)

    # Data first: cheap, and independent of torch.
    os.makedirs(os.path.dirname(paths.train_parquet), exist_ok=True)
    countdown.make_rl_dataframe(params.n_train, params.seed, "train").to_parquet(paths.train_parquet, index=False)
    countdown.make_rl_dataframe(params.n_val, params.seed, "val").to_parquet(paths.val_parquet, index=False)

    with torch_threads(params.num_threads):
        tokenizer = build_tokenizer(paths.model_dir)
        model = make_model(tokenizer, seed=params.seed)
        t_sft = time.perf_counter()
        sft_cfg = SFTConfig(
            steps=params.sft_steps, batch_size=params.sft_batch_size, seed=params.seed, show_progress=show_progress
        )
        losses = train_sft(model, tokenizer, sft_cfg)
        sft_seconds = time.perf_counter() - t_sft
        # Evaluated on the val parquet's own prompts (same seed), so the numbers describe the RL start.
        result = evaluate(model, tokenizer, params.n_eval, params.eval_temperature, seed=params.seed)
    # Overwrites the tokenizer's stub config.json with the full model config.
    model.save_pretrained(paths.model_dir)

    import transformers

    return {
        "name": BUILD_NAME,
        "params": asdict(params),
        "metrics": {
            "greedy_acc": result.greedy_acc,
            "sampled_acc": result.sampled_acc,
            "temperature": result.temperature,
            "entropy": result.entropy,
            "eval_prompts": result.n_prompts,
            "sft_first_loss": losses[0] if losses else None,
            "sft_final_loss": losses[-1] if losses else None,
        },
        "n_parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
        "sft_seconds": round(sft_seconds, 2),
        "build_seconds": round(time.perf_counter() - t_start, 2),
        "files": {"model_dir": MODEL_SUBDIR, "train_parquet": TRAIN_FILE, "val_parquet": VAL_FILE},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def _install(tmp: str, root: str, params: BuildParams) -> None:
    """Move the finished build ``tmp`` to ``root``, replacing an old or incomplete root.

    If another process installed a complete build meanwhile, keep theirs and drop ours.
    """
    old = None
    if os.path.exists(root):
        old = f"{root}.old-{uuid.uuid4().hex[:8]}"
        os.rename(root, old)
    try:
        os.rename(tmp, root)
    except OSError:
        if not is_complete(root, params):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def ensure_embedded_default(
    root: str | None = None,
    force: bool = False,
    *,
    seed: int = 0,
    sft_steps: int = SFTConfig.steps,
    sft_batch_size: int = SFTConfig.batch_size,
    n_train: int = 4096,
    n_val: int = 256,
    n_eval: int = 256,
    num_threads: int = 2,
    show_progress: bool = True,
) -> EmbeddedPaths:
    """Return the embedded default's paths, building it first if needed.

    A build happens when ``force`` is set, when a file is missing, or when the cached manifest was made
    with different parameters; otherwise the cached files are returned untouched. The keyword arguments
    (all recorded in the manifest) exist for tests and experiments; the defaults are the embedded default.
    """
    root = os.path.abspath(os.path.expanduser(root)) if root else default_root()
    params = BuildParams(
        seed=seed,
        sft_steps=sft_steps,
        sft_batch_size=sft_batch_size,
        n_train=n_train,
        n_val=n_val,
        n_eval=n_eval,
        num_threads=num_threads,
    )
    if not force and is_complete(root, params):
        return paths_for(root)

    _log(f"building embedded default in {root} ({params})")
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(root)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        manifest = _build_into(tmp, params, show_progress)
        # The manifest is written last: its presence (with the other files) marks a complete build.
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        _install(tmp, root, params)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    m = manifest["metrics"]
    _log(
        f"built in {manifest['build_seconds']:.1f}s: greedy acc {m['greedy_acc']:.3f}, "
        f"sampled acc (T={m['temperature']}) {m['sampled_acc']:.3f}, entropy {m['entropy']:.3f} nats/token"
    )
    return paths_for(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (or find) the cached embedded default model and data.")
    parser.add_argument("--root", default=None, help=f"cache root (default: {default_root()})")
    parser.add_argument("--force", action="store_true", help="rebuild even if a complete build exists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft-steps", type=int, default=SFTConfig.steps)
    args = parser.parse_args(argv)
    paths = ensure_embedded_default(args.root, force=args.force, seed=args.seed, sft_steps=args.sft_steps)
    manifest = read_manifest(paths.root) or {}
    print(f"root:          {paths.root}")
    print(f"model_dir:     {paths.model_dir}")
    print(f"train_parquet: {paths.train_parquet}")
    print(f"val_parquet:   {paths.val_parquet}")
    print(f"parameters:    {manifest.get('n_parameters')}")
    print(f"build_seconds: {manifest.get('build_seconds')}")
    print("metrics:       " + json.dumps(manifest.get("metrics", {})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
