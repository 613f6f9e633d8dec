"""Clip-V's full-vocabulary statistics (``engine/vocab_stats.py``) against the formulas."""

import pytest
import torch

from entropy_verl.engine.vocab_stats import entropy_and_vocab_stats


def test_vocab_stats_match_the_formulas_across_chunk_boundaries():
    logits = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0)) * 3
    entropy, sum_p2, sum_p2_logp = entropy_and_vocab_stats(logits, chunk_size=3)  # 10 positions: chunks 3, 3, 3, 1
    p = torch.softmax(logits, -1)
    assert torch.allclose(entropy, -(p * p.log()).sum(-1), atol=1e-5)
    assert torch.allclose(sum_p2, (p * p).sum(-1), atol=1e-6)
    assert torch.allclose(sum_p2_logp, (p * p * p.log()).sum(-1), atol=1e-5)
    peaked = torch.tensor([[50.0, 0.0, 0.0]])  # one-hot in float32: H 0, sum p^2 1, no NaN from 0 * log 0
    e, q, r = entropy_and_vocab_stats(peaked)
    assert e.item() == pytest.approx(0.0, abs=1e-6) and q.item() == pytest.approx(1.0) and torch.isfinite(r).all()
