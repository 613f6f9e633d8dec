"""Masked reductions over a micro-batch's valid tokens, shared by the loss methods."""

from __future__ import annotations

import numpy as np
import torch

from .context import LossContext


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


def masked_mean_std(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation of ``values`` over ``mask``; (0, 0) when nothing is selected."""
    mask = mask.to(values.dtype)
    count = mask.sum().clamp(min=1.0)
    mean = (values * mask).sum() / count
    var = (((values - mean) ** 2) * mask).sum() / count
    return mean, var.sqrt()


def selection_count(fraction: float, n: int) -> int:
    """How many of ``n`` tokens a method selecting ``fraction`` of them picks: at least one when there are any."""
    return max(int(fraction * n), 1) if n > 0 else 0


TORCH_QUANTILE_MAX = 2**24  # torch.quantile refuses larger inputs ("quantile() input tensor is too large")


def quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """``torch.quantile(values, q)`` (linear interpolation) of a 1-D tensor of any size: bit-identical to torch's
    up to 2^24 elements, where torch computes the rank q * (n - 1) in the values' dtype; above, where torch refuses,
    the rank is exact (float64). On the CPU (the driver's whole-step statistics) the two order statistics come from
    numpy's introselect, linear time on any input (torch's ``kthvalue`` is quadratic on sorted input, a sort of 2^25
    tokens takes seconds); elsewhere from a sort."""
    n = values.numel()
    if n == 0:
        return torch.tensor(float("nan"), dtype=values.dtype, device=values.device)
    if n <= TORCH_QUANTILE_MAX:
        rank = torch.tensor(q, dtype=values.dtype) * (n - 1)  # torch's own arithmetic
    else:
        rank = torch.tensor(q * (n - 1), dtype=torch.float64)
    below, above = int(rank.floor()), min(int(rank.ceil()), n - 1)
    if values.device.type == "cpu":
        ordered = torch.from_numpy(np.partition(values.detach().flatten().numpy(), (below, above)))
    else:
        ordered = torch.sort(values.flatten()).values
    return torch.lerp(ordered[below], ordered[above], (rank - below).to(values.dtype).to(values.device))
