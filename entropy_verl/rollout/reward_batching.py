"""``BatchingRewardHandle``: the agent-loop worker's reward calls of one event-loop turn, sent as one Ray call.

verl's agent loop scores each finished sample with its own Ray call to a reward worker
(``reward_handle.compute_score.remote(data)``, ``data`` a one-row ``DataProto``). Pickling that ``DataProto`` (a
``torch.save`` of a TensorDict) and unpickling it on the other side is most of the cost: a third of the agent-loop
worker's CPU and a quarter of the reward worker's on the embedded default, for a reward that is a string check.
This handle stands in for a reward worker's handle inside our CPU agent-loop worker: the one-row calls of a turn
are laid out as one batch in verl's usual layout (prompts left-padded, responses right-padded, the attention mask
marking both) and scored by the reward worker's own ``compute_score_batch``, which scores row by row with the same
``compute_score`` (``tests/rollout/test_reward_batching.py`` checks that every row scores and decodes as alone).
Calls that do not fit that layout (several rows, multi-modal position ids, a partial attention mask) go one by one,
as verl sends them.
"""

from __future__ import annotations

import asyncio

import numpy as np
import torch
from tensordict import TensorDict
from verl import DataProto

from entropy_verl.rollout.turn_batch import TurnBatch

ROW_FIELDS = ("prompts", "responses", "input_ids", "attention_mask", "position_ids")


class BatchingRewardHandle:
    """Wraps a reward worker's Ray handle; ``compute_score.remote(data)`` returns an awaitable, as Ray's does."""

    def __init__(self, handle):
        self.handle = handle
        self.compute_score = self  # verl calls ``handle.compute_score.remote(data)``
        self.batch = TurnBatch(self._score)

    def remote(self, data: DataProto):
        return self.batch.add(data) if fits_batch(data) else self.handle.compute_score.remote(data)

    async def _score(self, rows: list[DataProto]) -> list[dict]:
        try:
            batch = stack_rows(rows)
        except ValueError:  # rows whose extra fields do not stack: one call each, as verl sends them
            return list(await asyncio.gather(*(self.handle.compute_score.remote(row) for row in rows)))
        return await self.handle.compute_score_batch.remote(batch)


def fits_batch(data: DataProto) -> bool:
    """A one-row, text-only sample as verl's agent loop builds it for scoring: its five token fields, the attention
    mask all ones (prompt then response, no padding)."""
    if len(data) != 1 or data.batch is None or set(data.batch.keys()) != set(ROW_FIELDS):
        return False
    if any(data.batch[k].dim() != 2 for k in ROW_FIELDS):
        return False
    return bool(data.batch["attention_mask"].all())


def stack_rows(rows: list[DataProto]) -> DataProto:
    """One-row samples (``fits_batch``) as one batch in verl's layout: prompts left-padded to the longest prompt,
    responses right-padded to the longest response, the attention mask 1 on real tokens, positions counting real
    tokens. Raises ValueError where the rows' extra (non-tensor) fields do not stack."""
    prompt_width = max(r.batch["prompts"].shape[1] for r in rows)
    response_width = max(r.batch["responses"].shape[1] for r in rows)
    prompts, responses, masks = [], [], []
    for r in rows:
        prompt, response = r.batch["prompts"][0], r.batch["responses"][0]
        left, right = prompt_width - prompt.numel(), response_width - response.numel()
        prompts.append(torch.nn.functional.pad(prompt, (left, 0)))
        responses.append(torch.nn.functional.pad(response, (0, right)))
        real = torch.ones(prompt.numel() + response.numel(), dtype=r.batch["attention_mask"].dtype)
        masks.append(torch.nn.functional.pad(real, (left, right)))
    prompts, responses, attention_mask = torch.stack(prompts), torch.stack(responses), torch.stack(masks)
    batch = TensorDict(
        {
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attention_mask,
            "position_ids": (attention_mask.cumsum(dim=1) - 1).clamp(min=0),
        },
        batch_size=len(rows),
    )
    keys = rows[0].non_tensor_batch.keys()
    if any(r.non_tensor_batch.keys() != keys for r in rows):
        raise ValueError("rows carry different extra fields")
    non_tensor = {k: np.concatenate([r.non_tensor_batch[k] for r in rows]) for k in keys}
    return DataProto(batch=batch, non_tensor_batch=non_tensor)
