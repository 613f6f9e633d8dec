"""verl's own ``TrainingWorker`` (FSDP2 over gloo, world size 1) trains the embedded Qwen2 in this process, no Ray.

Built the way ``verl/trainer/sft_trainer.py`` builds it: typed configs, ``sft_loss``, a no-padding (nested tensor)
TensorDict carrying ``global_token_num`` and ``update_lr_scheduler``. The CPU platform registered by our
``verl.plugins`` entry point is what makes verl pick device ``cpu`` / backend ``gloo`` and find an engine for it.
"""

from __future__ import annotations

import os
import socket
from functools import partial

import pytest
import torch
import torch.distributed as dist

# Countdown sequences "numbers:target=expression"; the loss covers the expression and EOS.
SEQUENCES = ["3,7,5:16=7*3-5", "2,9,4:22=9*2+4", "8,3,6:30=8*3+6", "5,5,1:24=5*5-1"]
LR = 1e-3
N_STEPS = 5


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from entropy_verl.embedded.model import make_model
    from entropy_verl.embedded.tokenizer import build_tokenizer

    d = tmp_path_factory.mktemp("tiny_qwen2")
    tok = build_tokenizer(str(d))
    make_model(tok, seed=0).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def worker(model_dir):
    import verl  # noqa: F401  (loads the verl.plugins entry points)

    import entropy_verl.plugin as plugin

    plugin.check_loaded()
    if dist.is_initialized():
        pytest.skip("a process group already exists in this process; this test needs its own world-size-1 group")

    from verl.trainer.config import CheckpointConfig
    from verl.workers.config import FSDPEngineConfig, FSDPOptimizerConfig, HFModelConfig
    from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig
    from verl.workers.utils.losses import sft_loss

    env_before = dict(os.environ)  # verl's Worker also writes os.environ (REDIS_STORE_SERVER_HOST, ...)
    with pytest.MonkeyPatch.context() as mp:
        for key, val in dict(
            RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())
        ).items():
            mp.setenv(key, val)
        mp.delenv("DIST_INIT_METHOD", raising=False)
        try:
            config = TrainingWorkerConfig(
                model_type="language_model",
                model_config=HFModelConfig(
                    path=str(model_dir),
                    use_remove_padding=False,  # the remove-padding path wants flash-attn varlen kernels
                    enable_gradient_checkpointing=False,
                    override_config={"attn_implementation": "sdpa"},
                ),
                engine_config=FSDPEngineConfig(
                    strategy="fsdp2",
                    use_torch_compile=False,
                    model_dtype="fp32",
                    mixed_precision={"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"},
                    use_dynamic_bsz=False,
                    micro_batch_size_per_gpu=len(SEQUENCES),
                ),
                optimizer_config=FSDPOptimizerConfig(
                    lr=LR, weight_decay=0.0, lr_warmup_steps=0, total_training_steps=N_STEPS + 1
                ),
                checkpoint_config=CheckpointConfig(),
            )
            w = TrainingWorker(config=config)
            w.set_loss_fn(partial(sft_loss, config=None))
            w.reset()  # builds the FSDP2 module, optimizer and lr scheduler (engine.initialize)
            yield w
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
            os.environ.clear()
            os.environ.update(env_before)


def _batch(tokenizer):
    """A no-padding TensorDict as verl's SFTTensorCollator + SFTTrainer.fit produce it."""
    from tensordict import NonTensorData
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.dataset_utils import DatasetPadMode

    ids, masks = [], []
    for text in SEQUENCES:
        prompt, answer = text.split("=")
        p = tokenizer.encode(prompt + "=")
        a = tokenizer.encode(answer) + [tokenizer.eos_token_id]
        assert p + a == tokenizer.encode(text) + [tokenizer.eos_token_id]
        ids.append(torch.tensor(p + a))
        masks.append(torch.tensor([0] * len(p) + [1] * len(a)))  # marks target tokens; sft_loss shifts it

    def nested(ts):
        return torch.nested.as_nested_tensor(ts, layout=torch.jagged)

    data = tu.get_tensordict(
        tensor_dict={
            "input_ids": nested(ids),
            "position_ids": nested([torch.arange(len(t)) for t in ids]),
            "loss_mask": nested(masks),
        },
        non_tensor_dict={
            "use_remove_padding": False,
            "use_dynamic_bsz": False,
            "micro_batch_size_per_gpu": len(SEQUENCES),
            "temperature": 1.0,
            "global_batch_size": len(SEQUENCES),
            "pad_mode": DatasetPadMode.NO_PADDING,
            "pad_token_id": tokenizer.pad_token_id,
        },
    )
    seqlens = data["input_ids"].offsets().diff().tolist()  # dp_size 1: no all-gather needed
    tu.assign_non_tensor(data, update_lr_scheduler=True, global_token_num=NonTensorData(seqlens))
    return data


def _full_params(worker) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    return {
        name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
        for name, p in worker.engine.module.named_parameters()
    }


def _train_step(worker, tokenizer) -> dict:
    from verl.utils import tensordict_utils as tu

    out = worker.train_batch(_batch(tokenizer))
    return tu.get(out, "metrics")


def _reference_loss(model_dir, tokenizer) -> float:
    """Mean NLL of the answer tokens under the saved checkpoint, computed with plain transformers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    data = _batch(tokenizer)
    nll, n = 0.0, 0
    for ids, mask in zip(data["input_ids"].unbind(), data["loss_mask"].unbind(), strict=True):
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids[None]).logits[0, :-1].float(), -1)
        tok_nll = -logp.gather(-1, ids[1:, None]).squeeze(-1)
        nll += float((tok_nll * mask[1:]).sum())
        n += int(mask[1:].sum())
    return nll / n


def test_train_batch_updates_weights_and_lowers_loss(worker, model_dir):
    from torch.distributed.fsdp import FSDPModule
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    # (1) verl's FSDP engine, FSDP2-wrapped, on a gloo process group.
    assert isinstance(worker.engine, FSDPEngine), type(worker.engine)
    assert isinstance(worker.engine.module, FSDPModule), type(worker.engine.module)
    assert dist.get_backend() == "gloo"
    assert dist.get_world_size() == 1 and worker.engine.get_data_parallel_size() == 1

    tokenizer = worker.model_config.tokenizer

    # (2) one optimizer step changes the weights and reports a finite loss.
    before = _full_params(worker)
    metrics = _train_step(worker, tokenizer)
    after = _full_params(worker)
    first_loss = metrics["loss"]
    assert torch.isfinite(torch.tensor(first_loss)) and first_loss > 0, metrics
    # the engine's loss is the answer-token mean NLL of the pre-step weights (mask shift, padding, sdpa all agree)
    assert first_loss == pytest.approx(_reference_loss(model_dir, tokenizer), abs=1e-4)
    assert torch.isfinite(torch.tensor(metrics["grad_norm"])) and metrics["grad_norm"] > 0, metrics
    assert before.keys() == after.keys() and len(before) > 0
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) == len(before), f"unchanged: {sorted(set(before) - set(changed))}"

    # (3) a few more steps on the same batch lower its loss (reported loss is that of the pre-step weights).
    losses = [first_loss] + [_train_step(worker, tokenizer)["loss"] for _ in range(N_STEPS - 1)]
    assert all(torch.isfinite(torch.tensor(x)) for x in losses), losses
    assert losses[-1] < 0.8 * losses[0], losses
