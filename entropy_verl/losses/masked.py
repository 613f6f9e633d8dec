"""Masked reductions over a micro-batch's valid tokens, shared by the loss methods; and what the driver's whole-step
statistics and selections are made of (2^25 valid tokens at cluster size, a 2-core driver):

- the valid tokens of a field, flat in row-major order (``valid``), reduced without the padded (bsz, T) layout;
- elementwise work evaluated a chunk at a time (``chunked_map``, ``chunked_reduce``): the same values as on the whole
  tensors, but the intermediates stay in the CPU's cache instead of each costing a pass over fresh memory;
- exact order statistics from one radix count (``OrderStatistics``): every quantile and top-k of the step from a
  histogram of the values' float bits and a partition of the few bins that hold the requested ranks;
- the per-step values (valid tokens, their counts, order statistics) kept on the driver's whole-step context and
  shared by every method and the diagnostics (``context.memoized``).
"""

from __future__ import annotations

import functools
import math
import mmap
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .context import LossContext, memoized


def selected_token_mean(values: torch.Tensor, selected: torch.Tensor, ctx: LossContext) -> torch.Tensor:
    """Token-mean of ``values`` over ``selected`` tokens, weighted by this micro-batch's share of the mini-batch's
    valid tokens (verl's ``batch_num_tokens``), so gradient accumulation over micro-batches and data-parallel ranks
    gives the token-share-weighted mean; with one micro-batch it is exactly the mean over selected tokens."""
    selected = selected.to(values.dtype)
    local = (values * selected).sum() / selected.sum().clamp(min=1.0)
    batch_num_tokens = ctx.global_batch_info.get("batch_num_tokens")
    if batch_num_tokens is None:
        return local
    share = ctx.response_mask.sum() / float(batch_num_tokens) * float(ctx.global_batch_info.get("dp_size", 1))
    return local * share


def valid_token_mean(values: torch.Tensor, ctx: LossContext) -> float:
    """Mean of ``values`` over this micro-batch's valid tokens (a fraction when ``values`` is a selection): metrics."""
    return float((values * ctx.response_mask).sum() / ctx.response_mask.sum().clamp(min=1))


def selection_count(fraction: float, n: int) -> int:
    """How many of ``n`` tokens a method selecting ``fraction`` of them picks: at least one when there are any."""
    return max(int(fraction * n), 1) if n > 0 else 0


# ---- chunked elementwise work ---------------------------------------------------------------------------------------

CHUNK = 2**18  # elements per chunk: a float32 temporary of 1 MiB, so a chain of elementwise ops stays in the cache
_POOL: list = []  # [(pid, threads), the executor]


def chunks(n: int) -> list[slice]:
    """Slices of ``range(n)``, ``CHUNK`` long."""
    return [slice(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]


def over_chunks(fn, n: int, device: torch.device) -> list:
    """``[fn(part) for part in chunks(n)]``. On the CPU the chunks are spread over the intra-op threads, each chunk's
    ops on one thread: run multi-threaded, every small op would be a parallel region waiting for all threads, and
    thousands of those waits cost seconds as soon as other processes share the cores."""
    parts = chunks(n)
    threads = torch.get_num_threads()  # 1 inside a pool thread: no nesting
    if device.type != "cpu" or threads < 2 or len(parts) < 2:
        return [fn(part) for part in parts]
    key = (os.getpid(), threads)  # a forked child has none of its parent's threads
    if not _POOL or _POOL[0] != key:
        _POOL[:] = [key, ThreadPoolExecutor(threads, thread_name_prefix="entropy_verl_chunks")]
    torch.set_num_threads(1)
    try:
        return list(_POOL[1].map(fn, parts))
    finally:
        torch.set_num_threads(threads)


def sparse_zeros(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.zeros(n)`` for a few writes: on the CPU an anonymous mapping, whose 4 KiB pages the kernel zeroes when
    first touched, so a selection of thousands of a step's 2^25 tokens touches only their pages (torch.zeros writes
    every one)."""
    if device.type != "cpu" or n == 0:
        return torch.zeros(n, dtype=dtype, device=device)
    return torch.frombuffer(mmap.mmap(-1, n * torch.empty(0, dtype=dtype).element_size()), dtype=dtype)


def chunked_map(fn, *inputs: torch.Tensor) -> torch.Tensor:
    """``fn(*inputs)`` for an elementwise ``fn`` of flat tensors of one length, evaluated a chunk at a time into one
    output: the same values, without a full-size temporary per op."""
    n = inputs[0].numel()
    if n <= CHUNK:
        return fn(*inputs)
    like = fn(*(x[:0] for x in inputs))  # the output's dtype and device
    out = torch.empty(n, dtype=like.dtype, device=like.device)

    def fill(part):
        out[part] = fn(*(x[part] for x in inputs))

    over_chunks(fill, n, out.device)
    return out


def chunked_reduce(fn, combine, *inputs: torch.Tensor) -> torch.Tensor:
    """``combine`` (a reduction over dim 0) of ``fn`` of each chunk of the flat ``inputs``: for reductions that do not
    depend on the order (max, counts) or where a per-chunk float sum is fine (diagnostics)."""
    n = inputs[0].numel()
    if n <= CHUNK:
        return combine(fn(*inputs)[None])
    return combine(torch.stack(over_chunks(lambda part: fn(*(x[part] for x in inputs)), n, inputs[0].device)))


def chunked_nonzero(fn, *inputs: torch.Tensor) -> torch.Tensor:
    """Flat indices, ascending, where the elementwise boolean ``fn(*inputs)`` holds, a chunk at a time: no full-size
    mask for a condition few entries meet."""

    def found(part):
        return torch.nonzero(fn(*(x[part] for x in inputs))).squeeze(1) + part.start

    parts = over_chunks(found, inputs[0].numel(), inputs[0].device)
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64, device=inputs[0].device)


# ---- the valid tokens of a step -------------------------------------------------------------------------------------


def valid_positions(mask: torch.Tensor) -> torch.Tensor | None:
    """Flat positions (row-major; int32 where they fit) of the True entries of a mask; None when every entry is."""
    if int(torch.count_nonzero(mask)) == mask.numel():
        return None
    positions = torch.nonzero(mask.reshape(-1)).squeeze(1)
    return positions.to(torch.int32) if mask.numel() < 2**31 else positions


def at_positions(values: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """``values`` flattened, at ``positions`` (``valid_positions``; a view of all of them for None): the positions
    found once serve every field (indexing each with the boolean mask is 3-4x slower)."""
    flat = values.reshape(-1)
    return flat if positions is None else flat.index_select(0, positions)


def valid_tokens(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``values`` at the mask's True positions, flat in row-major order; a view when every position is valid."""
    return at_positions(values, valid_positions(mask))


def step_positions(ctx: LossContext) -> torch.Tensor | None:
    """``valid_positions`` of ``ctx.response_mask``."""
    return memoized(ctx, "valid_positions", lambda: valid_positions(ctx.response_mask))


def valid_count(ctx: LossContext) -> int:
    """Number of valid tokens of ``ctx``."""
    positions = step_positions(ctx)
    return ctx.response_mask.numel() if positions is None else positions.numel()


def valid(ctx: LossContext, name: str) -> torch.Tensor:
    """``ctx.<name>`` at the valid tokens, flat in row-major order (the order of ``response_mask.nonzero()``)."""
    return memoized(ctx, ("valid", name), lambda: at_positions(getattr(ctx, name), step_positions(ctx)))


def flat_mean(values: torch.Tensor) -> torch.Tensor:
    """sum / count of a flat tensor in its dtype (0 when empty): on an all-valid batch, bit for bit the masked
    token-mean ``(values * mask).sum() / mask.sum()``."""
    return values.sum() / torch.tensor(max(values.numel(), 1), dtype=values.dtype, device=values.device)


def chunked_sum(fn, *inputs: torch.Tensor) -> float:
    """The sum of ``fn`` (elementwise) over the flat ``inputs``, each chunk summed in the values' dtype and the chunks'
    sums in float64: no full-size temporary; a summation order other than one whole-tensor sum's."""
    return float(chunked_reduce(lambda *parts: fn(*parts).sum(), lambda sums: sums.double().sum(), *inputs))


def mean_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Population mean and standard deviation of a flat tensor (in its dtype), two chunked passes: the mean, then the
    mean squared deviation from it; (0, 0) when empty."""
    n = max(values.numel(), 1)
    mean = torch.tensor(chunked_sum(lambda v: v, values) / n, dtype=values.dtype, device=values.device)
    variance = chunked_sum(lambda v: (v - mean).square_(), values) / n
    return mean, torch.tensor(variance, dtype=values.dtype, device=values.device).sqrt()


def masked_mean_std(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation of ``values`` over ``mask``; (0, 0) when nothing is selected."""
    return mean_std(valid_tokens(values, mask))


def padded_selection(ctx: LossContext, parts, dtype: torch.dtype) -> torch.Tensor:
    """(bsz, T) zeros with ``value`` at the valid tokens ``indices`` (flat valid order) for each (indices, value) of
    ``parts``, a later part winning where two overlap: a driver-side selection in the batch's layout."""
    mask, positions = ctx.response_mask, step_positions(ctx)
    out = sparse_zeros(mask.numel(), dtype, mask.device)
    for indices, value in parts:
        out.index_fill_(0, indices if positions is None else positions[indices].long(), value)
    return out.view(mask.shape)


NTH_BLOCK = 256


def nth_true(mask: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Positions of the ``ranks``-th (0-based) True entries of a flat boolean tensor, i.e. ``mask.nonzero()[ranks]``,
    from per-block counts: a step's candidates are millions, the ranks asked for a few thousand."""
    pad = -mask.numel() % NTH_BLOCK
    if pad:
        mask = torch.cat([mask, mask.new_zeros(pad)])
    blocks = mask.view(-1, NTH_BLOCK)
    # per-block counts a chunk at a time: a sum over bools would first widen all of them to int64
    counts = torch.cat(
        over_chunks(
            lambda part: mask[part].view(torch.uint8).view(-1, NTH_BLOCK).sum(1, dtype=torch.int32),
            mask.numel(),
            mask.device,
        )
    )
    ends = counts.cumsum(0, dtype=torch.int64)
    block = torch.searchsorted(ends, ranks, right=True)
    within = ranks - (ends[block] - counts[block])  # the within-th True of its block
    rows = blocks[block]
    hit = (rows.cumsum(1) == (within + 1)[:, None]) & rows
    return block * NTH_BLOCK + hit.to(torch.uint8).argmax(1)


# ---- exact order statistics -----------------------------------------------------------------------------------------

TORCH_QUANTILE_MAX = 2**24  # torch.quantile refuses larger inputs ("quantile() input tensor is too large")
RADIX_MIN = 2**16  # below, numpy's partition of the whole input is as fast as counting bins
BINS = 2**16
# A float32's bin is its top 16 bits (sign, exponent, 7 mantissa bits) + 2^15, i.e. the pattern with its sign bit
# flipped: bins 2^15 .. 2^16 - 1 hold the non-negative values, growing with the bin; bins 0 .. 2^15 - 1 the negative
# ones, more negative with the bin (-0.0 in bin 0, next to +0.0's 2^15). VALUE_ORDER lists the bins in value order.
VALUE_ORDER = torch.cat([torch.arange(2**15 - 1, -1, -1), torch.arange(2**15, 2**16)])
VALUE_POSITION = torch.argsort(VALUE_ORDER)  # a bin's place in VALUE_ORDER
NONFINITE = ((torch.arange(BINS) ^ 2**15) & 0x7F80) == 0x7F80  # exponent all ones: the bins of +-inf and NaN


def value_bins(values: torch.Tensor) -> torch.Tensor:
    """The bin of each float32 value (int32, see ``VALUE_ORDER``)."""
    return (values.view(torch.int32) >> 16).add_(2**15)


def float32_at_or_below(threshold: float) -> float:
    """The largest float32 <= ``threshold``: for a float32 x, x > threshold exactly when x > it."""
    below = np.float32(threshold)
    return float(np.nextafter(below, np.float32(-np.inf)) if float(below) > threshold else below)


class OrderStatistics:
    """The k-th smallest values (0-based ranks; ties in any order) of a flat tensor, and how many exceed given
    thresholds.

    For finite float32 on the CPU, a radix select: one chunked pass counts the values per ``value_bins`` bin (2^16
    bins, value-ordered), then a request gathers the values of only the bins it falls in (about 2^25 / 2^16 each at
    cluster size) and partitions or compares those. Counts and gathered bins are kept, so a step's quantiles and
    top-k's share them, and the passes use both threads (numpy's partition of everything, per request, is one thread
    and 0.5 s at 2^25). Otherwise (other dtypes, +-inf or NaN, small inputs, accelerators) numpy's partition, or a
    sort, of the whole input: numpy's order, NaN last."""

    def __init__(self, values: torch.Tensor):
        self.values = values.detach().reshape(-1)
        self.count = self.values.numel()
        self.radix = values.dtype == torch.float32 and values.device.type == "cpu" and self.count > RADIX_MIN
        self._counts = None  # values per bin, in value order
        self._members = {}  # bin -> its values (numpy)
        self._known = {}  # rank -> value

    def __call__(self, ranks) -> torch.Tensor:
        """The values at ``ranks``, in that order."""
        ranks = [int(r) for r in ranks]
        missing = sorted({r for r in ranks if r not in self._known})
        if missing and self._by_bins():
            self._gather(self._bins_of_ranks(missing))
            by_bin = {}
            for rank, (bin_, within) in zip(missing, self._places(missing), strict=True):
                by_bin.setdefault(bin_, []).append((rank, within))
            for bin_, wanted in by_bin.items():
                found = np.partition(self._members[bin_], [within for _, within in wanted])
                self._known.update({rank: torch.tensor(found[within]) for rank, within in wanted})
        elif missing:
            self._known.update(zip(missing, self._partition(missing), strict=True))
        return torch.stack([self._known[r] for r in ranks])

    def count_greater(self, thresholds) -> list[int]:
        """How many values exceed each (float64) threshold: numpy's ``(values.astype(float64) > t).sum()``."""
        if not self._by_bins():
            return [int(torch.count_nonzero(self.values.double() > t)) for t in thresholds]
        bins = self._bins_of_thresholds(thresholds)
        self._gather(set(bins))
        ends = self._counts.cumsum(0)
        counts = []
        for t, bin_ in zip(thresholds, bins, strict=True):
            inside = self._members[bin_]
            counts.append(self.count - int(ends[VALUE_POSITION[bin_]]) + int((inside.astype(np.float64) > t).sum()))
        return counts

    def count_at_most(self, threshold: float) -> int:
        """How many values are <= ``threshold`` (compared in float64; NaN never is)."""
        if self._by_bins():  # finite values
            return self.count - self.count_greater([threshold])[0]
        return int(torch.count_nonzero(self.values.double() <= threshold))

    def prefetch(self, ranks=(), thresholds=()) -> None:
        """Gather, in one pass, what ``__call__(ranks)`` and ``count_greater(thresholds)`` will need."""
        if self._by_bins():
            self._gather(self._bins_of_ranks(ranks) | set(self._bins_of_thresholds(thresholds)))

    def edge(self, rank: int, largest: bool) -> torch.Tensor:
        """A value that the value at ``rank`` and every value beyond it (above when ``largest``, else below) reach,
        with few others: the far end of the rank's bin, or the value itself without bins. ``indices(v >= edge)`` (or
        ``<=``) lists the beyond and a part of one bin."""
        if not self._by_bins():
            return self([rank])[0]
        ((bin_, _),) = self._places([rank])
        top = bin_ ^ 2**15  # the bin's top 16 bits: its values' patterns run from top << 16 to that | 0xFFFF
        negative = top >= 2**15  # patterns grow with the magnitude, so a negative bin's smallest is its last pattern
        pattern = (top << 16) | (0xFFFF if negative == largest else 0)
        return torch.from_numpy(np.array([pattern], dtype=np.uint32).view(np.float32))[0]

    def indices(self, predicate) -> torch.Tensor:
        """Flat indices, ascending, of the values satisfying the elementwise ``predicate``."""
        return chunked_nonzero(predicate, self.values)

    # the radix select

    def _over_chunks(self, fn) -> list:
        """``fn`` of each chunk of the values (``over_chunks``)."""
        return over_chunks(lambda part: fn(self.values[part]), self.values.numel(), self.values.device)

    def _by_bins(self) -> bool:
        """Whether the radix select applies: counts the bins the first time."""
        if self.radix and self._counts is None:
            parts = self._over_chunks(lambda values: torch.bincount(value_bins(values), minlength=BINS))
            per_bin = parts[0]
            for part in parts[1:]:
                per_bin += part
            self.radix = not bool(per_bin[NONFINITE].any())  # +-inf and NaN: numpy's own order instead
            self._counts = per_bin[VALUE_ORDER]
        return self.radix

    def _places(self, ranks) -> list[tuple[int, int]]:
        """(bin, rank within the bin) of each rank."""
        ends = self._counts.cumsum(0)
        ranks = torch.tensor(ranks, dtype=torch.int64)
        position = torch.searchsorted(ends, ranks, right=True)
        within = ranks - ends[position] + self._counts[position]
        return list(zip(VALUE_ORDER[position].tolist(), within.tolist(), strict=True))

    def _bins_of_ranks(self, ranks) -> set[int]:
        return {b for b, _ in self._places(list(ranks))} if ranks else set()

    def _bins_of_thresholds(self, thresholds) -> list[int]:
        """The bin of each threshold's ``float32_at_or_below``."""
        points = torch.tensor([float32_at_or_below(t) for t in thresholds], dtype=torch.float32)
        return value_bins(points).tolist()

    def _gather(self, bins: set[int]) -> None:
        """Keep the values of ``bins`` (one pass for all of them)."""
        missing = sorted(bins - self._members.keys())
        if not missing:
            return
        wanted = torch.zeros(BINS, dtype=torch.bool)
        wanted[missing] = True
        members = torch.cat(self._over_chunks(lambda values: values[wanted.index_select(0, value_bins(values))]))
        of = value_bins(members)
        self._members.update({b: members[of == b].numpy() for b in missing})

    # the whole input

    def _partition(self, ranks: list[int]) -> torch.Tensor:
        values = self.values
        if values.device.type == "cpu" and values.dtype != torch.bfloat16:  # numpy's introselect: linear time
            return torch.from_numpy(np.partition(values.numpy(), ranks)[ranks])
        return torch.sort(values).values[ranks]


def quantile(values: torch.Tensor, q: float, order: OrderStatistics | None = None) -> torch.Tensor:
    """``torch.quantile(values, q)`` (linear interpolation) of a 1-D tensor of any size: bit-identical to torch's
    up to 2^24 elements, where torch computes the rank q * (n - 1) in the values' dtype; above, where torch refuses,
    the rank is exact (float64). The two order statistics come from ``order`` (the values' ``OrderStatistics``, shared
    by a step's quantiles) or a fresh one: linear time on any input (torch's ``kthvalue`` is quadratic on sorted input,
    a sort of 2^25 tokens takes seconds)."""
    n = values.numel()
    if n == 0:
        return torch.tensor(float("nan"), dtype=values.dtype, device=values.device)
    if n <= TORCH_QUANTILE_MAX:
        rank = torch.tensor(q, dtype=values.dtype) * (n - 1)  # torch's own arithmetic
    else:
        rank = torch.tensor(q * (n - 1), dtype=torch.float64)
    below, above = int(rank.floor()), min(int(rank.ceil()), n - 1)
    ordered = (order if order is not None else OrderStatistics(values))([below, above]).to(values.device)
    return torch.lerp(ordered[0], ordered[1], (rank - below).to(values.dtype).to(values.device))


def numpy_summary(order: OrderStatistics, qs, thresholds) -> tuple[list[float], list[int]]:
    """(``np.quantile(values, qs)``, ``[(values > t).sum() for t in thresholds]``) of the float64 values, bit for bit,
    from order statistics (one gather for both). numpy's quantile (linear): the virtual index (n - 1) q, its neighbours
    (both the last from n - 1 on, where numpy's weight is taken against index -1), numpy's lerp (from the upper end
    when the weight is >= 0.5) in float64; every quantile NaN when a value is NaN."""
    n = order.count
    virtual = [(n - 1) * q for q in qs]
    below = [-1 if v >= n - 1 else int(np.floor(v)) for v in virtual]
    above = [-1 if v >= n - 1 else i + 1 for v, i in zip(virtual, below, strict=True)]
    ranks = [i % n for i in (*below, *above)] + [n - 1]
    order.prefetch(ranks, thresholds)
    values = order(ranks).double().tolist()
    counts = order.count_greater(thresholds)
    if np.isnan(values[-1]):
        return [float("nan")] * len(qs), counts
    quantiles = []
    for v, i, a, b in zip(virtual, below, values[: len(qs)], values[len(qs) : 2 * len(qs)], strict=True):
        t = v - i
        diff = b - a
        quantiles.append(b - diff * (1 - t) if t >= 0.5 else a + diff * t)
    return quantiles, counts


KEEP_MARGIN = 1.1  # ranks to cover beyond k / (kept fraction), so that k kept entries are in the first pass


def top_k(order: OrderStatistics, k: int, largest: bool = True, keep=None, kept: int | None = None) -> torch.Tensor:
    """Flat indices, ascending, of the k largest (smallest) of ``order``'s values, or of those whose flat indices
    ``keep`` accepts (``kept`` of them): every value beyond the k-th and, of those equal to it, the first ones by
    index. The set ``torch.topk`` picks wherever the k-th value is unique (topk's choice among ties is unspecified).
    See ``extremes``."""
    return extremes(order, k, (largest,), keep, kept)[0]


def extremes(order: OrderStatistics, k: int, sides=(False, True), keep=None, kept: int | None = None) -> list:
    """``top_k`` for each of ``sides`` (False: the smallest, True: the largest) from one chunked pass: it lists the
    entries at or beyond the edge (``OrderStatistics.edge``) of rank k on each side, or of enough ranks that about k
    of them are kept, and a stable sort of those candidates decides; short of k kept candidates on a side, the pass
    is repeated over twice the ranks."""
    m, device = order.count, order.values.device
    kept = m if kept is None else kept
    k = min(k, kept)
    if k <= 0:
        return [torch.empty(0, dtype=torch.int64, device=device) for _ in sides]
    reach = min(m, k if keep is None else math.ceil(k * m / kept * KEEP_MARGIN))
    while True:
        edges = [order.edge(m - reach if largest else reach - 1, largest).to(device) for largest in sides]

        def beyond(values, edges=edges):
            hits = [values >= edge if largest else values <= edge for largest, edge in zip(sides, edges, strict=True)]
            return functools.reduce(torch.logical_or, hits)

        candidates = order.indices(beyond)
        if keep is not None:
            candidates = candidates[keep(candidates)]
        values = order.values[candidates]
        on_side = [values >= edge if largest else values <= edge for largest, edge in zip(sides, edges, strict=True)]
        if reach == m or all(int(side.sum()) >= k for side in on_side):
            break
        reach = min(m, 2 * reach)
    chosen = []
    for largest, side in zip(sides, on_side, strict=True):
        order_of = torch.sort(values[side], descending=largest, stable=True).indices[:k]  # ties: by index
        chosen.append(candidates[side][order_of].sort().values)
    return chosen


def valid_order(ctx: LossContext, name: str) -> OrderStatistics:
    """``OrderStatistics`` of ``ctx.<name>`` over the valid tokens: on the driver's context, one per step for all of
    its quantiles (80/20's, SENT's, the diagnostics')."""
    return memoized(ctx, ("order", name), lambda: OrderStatistics(valid(ctx, name)))


def valid_quantile(ctx: LossContext, name: str, q: float) -> torch.Tensor:
    """``quantile`` of ``ctx.<name>`` as float32 over the valid tokens."""
    values = valid(ctx, name)
    if values.dtype == torch.float32:
        return quantile(values, q, valid_order(ctx, name))
    return quantile(values.float(), q)
