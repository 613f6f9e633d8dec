"""``stack_rows`` and ``BatchingRewardHandle``: the one-row reward inputs that verl's own agent-loop worker builds
(captured from its ``_compute_score``), stacked into one batch, score and decode exactly as each row alone under
verl's reward manager with the countdown reward."""

from __future__ import annotations

import asyncio

import pytest
import torch
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput, AgentLoopWorker
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

from entropy_verl.rollout.reward_batching import BatchingRewardHandle, fits_batch, stack_rows
from entropy_verl.tasks import countdown

# (prompt, response): prompts of 8 and 9 tokens, right and wrong answers of different lengths
SAMPLES = [("3,7,5:16=", "7*3-5"), ("3,7,5:9=", "7-3+5"), ("2,4,6:48=", "2*4*6"), ("2,4,6:4=", "6"), ("1,1,1:3=", "")]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from entropy_verl.embedded.tokenizer import build_tokenizer

    return build_tokenizer(str(tmp_path_factory.mktemp("tok")))


@pytest.fixture(scope="module")
def verl_rows(tokenizer):
    """What verl's agent-loop worker sends its reward worker for each sample (its ``_compute_score``, captured)."""
    captured = []

    class Capture:
        class compute_score:
            @staticmethod
            async def remote(data):
                captured.append(data)
                return {"reward_score": 0.0, "reward_extra_info": {}}

    worker = object.__new__(AgentLoopWorker)
    worker.processor, worker.mm_processor_kwargs, worker.tokenizer = None, None, tokenizer
    worker.reward_loop_worker_handles = [Capture]
    for i, (prompt, response) in enumerate(SAMPLES):
        response_ids = tokenizer.encode(response) + [tokenizer.eos_token_id]
        output = AgentLoopOutput(
            prompt_ids=tokenizer.encode(prompt),
            response_ids=response_ids,
            response_mask=[1] * len(response_ids),
            num_turns=2,
            metrics=AgentLoopMetrics(),
        )
        numbers, target = prompt.rstrip("=").split(":")
        kwargs = {
            "data_source": "countdown3",
            "raw_prompt": [{"role": "user", "content": prompt}],
            "reward_model": {"ground_truth": countdown.format_ground_truth(numbers.split(","), int(target))},
            "extra_info": {"index": i},
            "uid": f"u{i}",
            "session_id": 0,
        }
        asyncio.run(worker._compute_score([output], kwargs=kwargs))
    return captured


@pytest.fixture(scope="module")
def run():
    """One event loop for the module: verl's reward manager keeps the loop it was built on."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop.run_until_complete
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture(scope="module")
def manager(tokenizer, run):
    return NaiveRewardManager(OmegaConf.create({}), tokenizer, compute_score=countdown.compute_score)


def test_verl_rows_fit_and_a_stacked_batch_scores_every_row_as_alone(verl_rows, manager, tokenizer, run):
    assert all(fits_batch(row) for row in verl_rows)
    batch = stack_rows(verl_rows)
    alone = [run(manager.run_single(row)) for row in verl_rows]
    stacked = [run(manager.run_single(batch[i : i + 1])) for i in range(len(batch))]
    assert stacked == alone
    assert [a["reward_score"] for a in alone] == [1.0, 1.0, 1.0, 0.0, 0.0]  # the test can tell right from wrong
    # verl's layout: the prompt sits at the end of its left-padded slot, as a prompt-reading reward manager expects
    width = batch.batch["prompts"].shape[1]
    for i, (prompt, _) in enumerate(SAMPLES):
        length = int(batch.batch["attention_mask"][i, :width].sum())
        assert tokenizer.decode(batch.batch["prompts"][i, width - length :]) == prompt
        real = batch.batch["attention_mask"][i].bool()
        assert torch.equal(batch.batch["position_ids"][i, real], torch.arange(int(real.sum())))


def test_rows_that_do_not_fit_verls_single_turn_layout_are_not_stacked(verl_rows):
    two_rows = type(verl_rows[0]).concat([verl_rows[0], verl_rows[0]])
    assert not fits_batch(two_rows)
    padded = verl_rows[0][0:1]
    padded.batch = padded.batch.clone()  # the slice shares the fixture's tensors
    padded.batch["attention_mask"][0, 0] = 0
    assert not fits_batch(padded)


def test_the_handle_sends_a_turns_calls_as_one_batch_and_each_caller_gets_its_rows_score(verl_rows, manager, run):
    calls = []

    class RewardWorker:  # a reward worker's Ray surface, scoring with verl's reward manager in-process
        class compute_score:
            @staticmethod
            async def remote(data):
                calls.append(("compute_score", len(data)))
                return await manager.run_single(data)

        class compute_score_batch:
            @staticmethod
            async def remote(data):
                calls.append(("compute_score_batch", len(data)))
                return [await manager.run_single(data[i : i + 1]) for i in range(len(data))]

    handle = BatchingRewardHandle(RewardWorker)

    async def score_all():
        return await asyncio.gather(*(handle.compute_score.remote(row) for row in verl_rows))

    results = run(score_all())
    assert [r["reward_score"] for r in results] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert calls == [("compute_score_batch", len(SAMPLES))]
