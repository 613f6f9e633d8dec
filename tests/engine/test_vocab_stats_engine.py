"""Clip-V's statistics inside verl's FSDP engine: ``VocabStatsFSDPEngine.prepare_model_outputs`` on hand-made logits,
in both of verl's layouts (packed ``use_remove_padding`` and padded), against verl's own outputs for the same inputs.

The engine object is built without ``__init__`` (no model, no process group): ``prepare_model_outputs`` only turns a
forward's logits into per-token outputs, which is the part we extend. The full path (old-log-prob forward on Ray
workers) runs in the Clip-V smoke test."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import verl.utils.torch_functional as verl_F
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import FSDPEngineConfig

from entropy_verl.engine import VOCAB_STATS_FLAG
from entropy_verl.engine.fsdp import VocabStatsFSDPEngine

LENGTHS = (3, 5)  # two sequences (prompt + response tokens)
VOCAB = 11
TEMPERATURE = 0.7


def engine() -> VocabStatsFSDPEngine:
    e = VocabStatsFSDPEngine.__new__(VocabStatsFSDPEngine)
    e.engine_config = FSDPEngineConfig(strategy="fsdp2", entropy_from_logits_chunk_size=2)  # chunks cross sequences
    e.compute_entropy_from_logits = verl_F.entropy_from_logits
    e.use_ulysses_sp = False
    return e


def inputs(use_remove_padding: bool, flag: bool):
    gen = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, VOCAB, (n,), generator=gen) for n in LENGTHS]
    input_ids = torch.nested.as_nested_tensor(ids, layout=torch.jagged)
    rolled = torch.cat([torch.roll(t, -1) for t in ids])
    nnz = sum(LENGTHS)
    micro_batch = TensorDict({"input_ids": input_ids}, batch_size=[len(LENGTHS)])
    tu.assign_non_tensor(
        micro_batch,
        use_remove_padding=use_remove_padding,
        calculate_entropy=True,
        **({VOCAB_STATS_FLAG: True} if flag else {}),
    )
    packed = torch.randn(nnz, VOCAB, generator=gen) * 3
    if use_remove_padding:
        logits = packed.unsqueeze(0)  # (1, total_nnz, vocab)
        args = {
            "input_ids_rmpad_rolled": rolled,
            "temperature_rmpad": torch.full((nnz,), TEMPERATURE),
            "pad_size": 0,
            "temperature_is_one": False,
        }
    else:
        logits = torch.full((len(LENGTHS), max(LENGTHS), VOCAB), 7.0)  # padding columns hold junk
        for i, (start, n) in enumerate(zip((0, LENGTHS[0]), LENGTHS, strict=True)):
            logits[i, :n] = packed[start : start + n]
        args = {
            "input_ids_rmpad_rolled": rolled,
            "temperature": torch.full((len(LENGTHS),), TEMPERATURE),
            "temperature_is_one": False,
        }
    return SimpleNamespace(logits=logits), args, micro_batch, packed


@pytest.mark.parametrize("use_remove_padding", [True, False])
@pytest.mark.parametrize("grad", [False, True])
def test_statistics_match_the_formulas_and_verls_outputs_are_unchanged(use_remove_padding, grad):
    output, args, plain_batch, packed = inputs(use_remove_padding, flag=False)
    output.logits.requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        verl_out = engine().prepare_model_outputs(output, args, plain_batch, None)
        _, _, flagged_batch, _ = inputs(use_remove_padding, flag=True)
        ours = engine().prepare_model_outputs(output, args, flagged_batch, None)
    p = torch.softmax(packed / TEMPERATURE, -1)
    assert ours["sum_p2"].offsets().tolist() == verl_out["entropy"].offsets().tolist() == [0, 3, 8]
    assert torch.allclose(ours["sum_p2"].values(), (p * p).sum(-1), atol=1e-6)
    assert torch.allclose(ours["sum_p2_logp"].values(), (p * p * p.log()).sum(-1), atol=1e-5)
    assert torch.allclose(ours["entropy"].values(), verl_out["entropy"].values(), atol=1e-5)
    assert torch.equal(ours["log_probs"].values(), verl_out["log_probs"].values())
    # forward-only: our pass replaced verl's entropy pass; with gradient verl's entropy (and its graph) is kept
    assert ours["entropy"].values().requires_grad is grad and verl_out["entropy"].values().requires_grad is grad
    assert tu.get_non_tensor_data(data=flagged_batch, key="calculate_entropy", default=None) is True  # restored


def test_without_the_flag_the_engine_is_verls():
    output, args, batch, _ = inputs(True, flag=False)
    assert set(engine().prepare_model_outputs(output, args, batch, None)) == {"log_probs", "entropy"}


def test_fused_kernels_are_refused_with_the_key_to_change():
    output, args, batch, _ = inputs(True, flag=True)
    tu.assign_non_tensor(batch, use_fused_kernels=True)
    with pytest.raises(NotImplementedError, match="use_fused_kernels=false"):
        engine().prepare_model_outputs(output, args, batch, None)
