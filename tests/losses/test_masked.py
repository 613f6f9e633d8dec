"""The driver's whole-step building blocks (``losses/masked.py``): chunked passes, valid-token views, the per-step memo,
and the exact order statistics (radix select) behind every quantile and top-k of a step, against hand values and
against numpy / torch on random inputs with ties, -0.0 and tiny negative values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from entropy_verl.losses import LossContext
from entropy_verl.losses import masked as M


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 64 entries, so small tensors span many chunks."""
    monkeypatch.setattr(M, "CHUNK", 64)


def awkward(n: int, seed: int, kind: str) -> torch.Tensor:
    """float32 values with the cases a radix select can get wrong."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "ties":  # few distinct values, many of each
        return torch.randint(-3, 4, (n,), generator=gen).float() / 4
    if kind == "entropy":  # non-negative with exact zeros, -0.0, tiny negatives (rounding) and tiny positives
        values = torch.rand(n, generator=gen) * 3
        values[::7] = 0.0
        values[1::11] = -0.0
        values[2::13] = -1e-7
        values[3::17] = 1e-30
        return values
    return torch.randn(n, generator=gen) * 5  # signed, continuous


# ---- chunked passes -------------------------------------------------------------------------------------------------


def test_chunked_passes_equal_whole_tensor_ops(small_chunks):
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    y = torch.rand(1000, generator=torch.Generator().manual_seed(1))
    assert [(p.start, p.stop) for p in M.chunks(130)] == [(0, 64), (64, 128), (128, 130)]
    assert torch.equal(M.chunked_map(lambda a, b: a * b + 1, x, y), x * y + 1)
    assert M.chunked_map(lambda a: a > 0, x).dtype == torch.bool
    assert torch.equal(M.chunked_reduce(lambda a: a.max(), torch.max, x), x.max())
    assert torch.equal(
        M.chunked_nonzero(lambda a, b: (a > 1) & (b < 0.5), x, y), torch.nonzero((x > 1) & (y < 0.5))[:, 0]
    )
    assert M.chunked_sum(lambda a: a * 2, y) == pytest.approx(float(y.double().sum() * 2), rel=1e-6)
    assert M.chunked_nonzero(lambda a: a > 0, torch.empty(0)).numel() == 0


def test_chunks_run_on_a_pool_and_restore_the_thread_count(small_chunks):
    threads = torch.get_num_threads()
    seen = M.over_chunks(lambda part: torch.get_num_threads(), 1000, torch.device("cpu"))
    assert len(seen) == 16 and torch.get_num_threads() == threads
    assert set(seen) == {1}  # each chunk's ops on one thread (the chunks in parallel, when there are several threads)


def test_mean_std_hand_computed_and_empty():
    mean, std = M.mean_std(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert mean.item() == 3.0 and std.item() == pytest.approx(math.sqrt((4 + 1 + 0 + 9) / 4))
    assert [t.item() for t in M.mean_std(torch.empty(0))] == [0.0, 0.0]
    values, mask = torch.tensor([[1.0, 9.0], [3.0, 2.0]]), torch.tensor([[True, False], [True, True]])
    assert [t.item() for t in M.masked_mean_std(values, mask)] == pytest.approx([2.0, math.sqrt(2 / 3)])
    assert [t.item() for t in M.masked_mean_std(values, torch.zeros_like(mask))] == [0.0, 0.0]
    assert M.flat_mean(torch.tensor([1.0, 2.0])).item() == 1.5 and M.flat_mean(torch.empty(0)).item() == 0.0


# ---- valid tokens, the memo, selections in the batch layout ---------------------------------------------------------


def test_valid_positions_and_tokens_hand_computed():
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    values = torch.tensor([[1.0, 2.0, 9.0], [9.0, 3.0, 4.0]])
    assert M.valid_positions(mask).tolist() == [0, 1, 4, 5]
    assert M.valid_tokens(values, mask).tolist() == [1.0, 2.0, 3.0, 4.0]
    full = torch.ones(2, 3, dtype=torch.bool)
    assert M.valid_positions(full) is None and M.valid_tokens(values, full).data_ptr() == values.data_ptr()  # a view


def whole_step(mask, **fields) -> LossContext:
    shape = mask.shape
    return LossContext.of_sampling_policy(
        fields.get("old_log_prob", torch.zeros(shape)),
        fields.get("advantages", torch.zeros(shape)),
        mask,
        fields.get("old_entropy", torch.zeros(shape)),
    )


def test_the_memo_is_the_driver_contexts_own_and_follows_its_fields(method):
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    entropy = torch.tensor([[0.5, 1.5, 7.0], [2.5, 7.0, 7.0]])
    ctx = whole_step(mask, old_entropy=entropy)
    first = M.valid(ctx, "old_entropy")
    assert first.tolist() == [0.5, 1.5, 2.5] and M.valid(ctx, "old_entropy") is first  # computed once
    spec, cfg = method("top_entropy")
    ctx.step_stats = {"top_entropy": {"threshold": 1.0}}
    assert ctx.for_method(spec, cfg).memo is None  # a method's view computes, never reads the step's memo
    entropy[0, 0] = 4.0  # changed in place: the memo notices (the version counter)
    assert M.valid(ctx, "old_entropy").tolist() == [4.0, 1.5, 2.5]
    ctx.old_entropy = torch.full((2, 3), 3.0)  # replaced
    assert M.valid(ctx, "old_entropy").tolist() == [3.0, 3.0, 3.0]
    plain = LossContext(ctx.log_prob, ctx.old_log_prob, ctx.advantages, mask, None, ctx.old_entropy)
    assert plain.memo is None and M.valid(plain, "old_entropy") is not M.valid(plain, "old_entropy")
    assert "memo" not in repr(ctx)


def test_padded_selection_places_values_at_valid_positions_later_parts_win():
    mask = torch.tensor([[1, 0, 1], [1, 1, 0]], dtype=torch.bool)
    ctx = whole_step(mask)
    out = M.padded_selection(ctx, [(torch.tensor([0, 3]), 0.5), (torch.tensor([3, 1]), 2.0)], torch.float32)
    assert out.tolist() == [[0.5, 0.0, 2.0], [0.0, 2.0, 0.0]] and out.dtype == torch.float32
    full = whole_step(torch.ones(2, 3, dtype=torch.bool))
    assert M.padded_selection(full, [(torch.tensor([4]), 1.0)], torch.float64).tolist() == [[0, 0, 0], [0, 1, 0]]
    assert M.sparse_zeros(5, torch.float32, torch.device("cpu")).tolist() == [0.0] * 5


@pytest.mark.parametrize("n", [1, 255, 256, 1000, 70_001])
def test_nth_true_is_nonzero_at_ranks(n):
    gen = torch.Generator().manual_seed(n)
    mask = torch.rand(n, generator=gen) < 0.3
    mask[0] = True
    listed = torch.nonzero(mask)[:, 0]
    ranks = torch.randint(0, listed.numel(), (50,), generator=gen)
    assert torch.equal(M.nth_true(mask, ranks), listed[ranks])


# ---- order statistics -----------------------------------------------------------------------------------------------


def test_value_bins_follow_the_values_order():
    values = torch.tensor(
        [-3e38, -2.0, -1.0, -1e-30, -1e-45, -0.0, 0.0, 1e-45, 1e-30, 0.5, 1.0, 1.0000001, 3e38], dtype=torch.float32
    )
    places = M.VALUE_POSITION[M.value_bins(values).long()]
    assert torch.all(places[1:] >= places[:-1]) and places[5] < places[6]  # -0.0 ends the negatives


@pytest.mark.parametrize("kind", ["signed", "ties", "entropy"])
def test_order_statistics_are_numpys_on_the_radix_path(kind):
    values = awkward(200_003, 0, kind)
    order = M.OrderStatistics(values)
    assert order.radix
    ranks = [0, 1, 17, 100_001, 150_000, 199_999, 200_002, 200_002]
    expected = np.partition(values.numpy(), ranks)[ranks]
    assert torch.equal(order(ranks), torch.from_numpy(expected))
    assert order(ranks[:2]).tolist() == expected[:2].tolist()  # kept from the first request


def test_order_statistics_count_greater_is_numpys_float64_comparison():
    values = awkward(100_000, 2, "entropy")
    order = M.OrderStatistics(values)
    thresholds = (0.1, 0.5, 1.0, 2.0, 0.0, -1e-7, float(np.float32(0.1)))
    expected = [int((values.double().numpy() > t).sum()) for t in thresholds]
    assert order.count_greater(thresholds) == expected  # a float32 0.1 is above the threshold 0.1
    assert order.count_at_most(0.5) == int((values <= 0.5).sum())
    assert M.float32_at_or_below(0.1) < 0.1 and M.float32_at_or_below(0.5) == 0.5


def test_order_statistics_with_inf_or_nan_fall_back_to_numpys_order():
    values = awkward(100_000, 3, "signed")
    values[10] = float("nan")
    values[20] = float("inf")
    order = M.OrderStatistics(values)
    assert order([0, 99_998, 99_999]).tolist()[1] == float("inf") and math.isnan(order([99_999]).item())
    assert not order.radix
    assert order.count_greater([0.0]) == [int((values > 0).sum())]
    assert order.count_at_most(0.0) == int((values <= 0).sum())


@pytest.mark.parametrize("kind", ["signed", "ties", "entropy"])
def test_quantile_is_torch_quantile_bit_for_bit_on_the_radix_path(kind):
    values = awkward(300_007, 4, kind)
    order = M.OrderStatistics(values)
    for q in (0.0, 1e-4, 0.2, 0.5, 0.8, 0.9, 0.99, 1 - 2e-4, 1.0):
        assert torch.equal(M.quantile(values, q, order), torch.quantile(values, q)), q


def test_quantile_above_two_to_the_24_is_exact():
    n = M.TORCH_QUANTILE_MAX + 3
    values = awkward(n, 5, "entropy")
    for q in (0.25, 0.8):
        rank = q * (n - 1)
        below, above = math.floor(rank), math.ceil(rank)
        a, b = np.partition(values.numpy(), [below, above])[[below, above]]
        expected = torch.lerp(torch.tensor(a), torch.tensor(b), torch.tensor(rank - below, dtype=torch.float32))
        assert torch.equal(M.quantile(values, q), expected), q


@pytest.mark.parametrize("n", [1, 2, 9, 1000, 200_001])
@pytest.mark.parametrize("kind", ["signed", "ties", "entropy"])
def test_numpy_summary_is_np_quantile_and_counts_bit_for_bit(n, kind):
    values = awkward(n, n, kind)
    qs, thresholds = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0), (0.1, 0.5, 1.0, 2.0)
    quantiles, counts = M.numpy_summary(M.OrderStatistics(values), qs, thresholds)
    as_float64 = values.double().numpy()
    assert quantiles == np.quantile(as_float64, qs).tolist()
    assert counts == [int((as_float64 > t).sum()) for t in thresholds]


def test_numpy_summary_with_a_nan_is_all_nan_as_numpy():
    values = torch.tensor([0.5, float("nan"), 0.1])
    quantiles, counts = M.numpy_summary(M.OrderStatistics(values), (0.1, 0.5), (0.2,))
    assert all(math.isnan(q) for q in quantiles) and np.isnan(np.quantile(values.double().numpy(), 0.5))
    assert counts == [1]


def reference_top_k(values, k, largest, kept=None):
    """The k largest (smallest) among ``kept`` (a mask), ties by index: a stable sort of everything."""
    index = torch.arange(values.numel()) if kept is None else torch.nonzero(kept)[:, 0]
    order = torch.sort(values[index], descending=largest, stable=True).indices[:k]
    return index[order].sort().values


@pytest.mark.parametrize("n", [500, 150_000])
@pytest.mark.parametrize("kind", ["signed", "ties", "entropy"])
def test_top_k_and_extremes_are_exact_with_ties_by_index(n, kind):
    values = awkward(n, 6, kind)
    order = M.OrderStatistics(values)
    for k in (1, 30, n // 10, n):
        for largest in (True, False):
            assert torch.equal(M.top_k(order, k, largest), reference_top_k(values, k, largest)), (k, largest)
    kept = torch.rand(n, generator=torch.Generator().manual_seed(7)) < 0.8
    smallest, largest = M.extremes(order, 25, keep=lambda i: kept[i], kept=int(kept.sum()))
    assert torch.equal(smallest, reference_top_k(values, 25, False, kept))
    assert torch.equal(largest, reference_top_k(values, 25, True, kept))
    if kind == "signed":  # distinct values: the set torch.topk picks
        top = set(torch.topk(values, n // 10).indices.tolist())
        assert set(M.top_k(order, n // 10).tolist()) == top
    assert M.top_k(order, 0).numel() == 0


def test_extremes_widen_when_the_kept_entries_are_all_at_the_far_end():
    values = torch.arange(100_000, dtype=torch.float32)
    kept = values >= 90_000  # the smallest kept are far from the smallest overall: several passes
    smallest, _ = M.extremes(M.OrderStatistics(values), 10, keep=lambda i: kept[i], kept=10_000)
    assert smallest.tolist() == list(range(90_000, 90_010))
