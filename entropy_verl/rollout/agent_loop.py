"""A leaner agent-loop worker for CPU runs: one agent-loop object per agent name instead of one per sample.

verl's agent-loop worker builds a fresh agent-loop object for every sample with ``hydra.utils.instantiate`` (an
OmegaConf merge of the trainer config plus a new tokenizer builder): ~2 ms of Python per sample, a fifth of the
worker's time on the embedded default, where a step is 256 samples of ~10 generated tokens. verl's single-turn loop
keeps no per-sample state on the object (``run`` reads only what ``__init__`` set), so one object per agent name
serves every sample. Other agent loops (tool, multi-turn) may keep state and are still built per sample.

With the ``hf`` rollout server, the worker also sends its generate calls through ``HFBatchingClient`` (one Ray call
per event-loop turn instead of three per sample), and on any backend its reward calls through
``BatchingRewardHandle`` (one per turn instead of one per sample).

Selected through verl's own extension point, ``actor_rollout_ref.rollout.agent.agent_loop_manager_class`` (set in
the CPU hardware groups only; GPU runs keep verl's manager).
"""

from __future__ import annotations

import hydra
import ray
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ
from verl.utils.rollout_trace import rollout_trace_attr

from entropy_verl.rollout.hf import ROLLOUT_NAME as HF_ROLLOUT
from entropy_verl.rollout.hf.client import HFBatchingClient
from entropy_verl.rollout.reward_batching import BatchingRewardHandle

# agent-loop classes whose ``run`` keeps all per-sample state local (checked by tests/rollout/test_agent_loop.py)
STATELESS_AGENT_LOOPS = (SingleTurnAgentLoop,)


# verl's v1 agent-loop worker class itself; verl's module exposes it wrapped by ``ray.remote``, which cannot be
# subclassed
_VerlWorker = AgentLoopWorkerTQ.__ray_metadata__.modified_class.__ray_actor_class__


class AgentLoopWorkerReusingLoops(_VerlWorker):
    """verl's v1 agent-loop worker (TransferQueue outputs), building each stateless agent loop once."""

    def __init__(self, *args, **kwargs):
        # explicit: with the constructor inherited, Ray's actor creation fails in verl's zero-argument super() call
        _VerlWorker.__init__(self, *args, **kwargs)
        self.reused_agent_loops = {}
        if self.rollout_config.name == HF_ROLLOUT and not self.rollout_config.trace.get("backend"):
            # one Ray call per event-loop turn to the hf server instead of three per sample (hf/client.py); verl's
            # client stays where tracing records each call
            self.llm_client = HFBatchingClient.replacing(self.llm_client)
        if self.reward_loop_worker_handles is not None:
            # one reward call per event-loop turn instead of one per sample (reward_batching.py)
            self.reward_loop_worker_handles = [BatchingRewardHandle(h) for h in self.reward_loop_worker_handles]

    def _agent_loop(self, agent_name: str):
        cache = self.reused_agent_loops
        if agent_name in cache:
            return cache[agent_name]
        assert agent_name in _agent_loop_registry, (
            f"Agent loop {agent_name} not registered, registered agent loops: {_agent_loop_registry.keys()}"
        )
        agent_loop = hydra.utils.instantiate(
            config=_agent_loop_registry[agent_name],
            trainer_config=DictConfigWrap(config=self.config),
            server_manager=self.llm_client,
            tokenizer=self.tokenizer,
            processor=self.processor,
            hf_model_type=self.hf_model_type,
            dataset_cls=self.dataset_cls,
            data_config=DictConfigWrap(self.config.data),
            tools=ToolListWrap(self.tools),
        )
        if type(agent_loop) in STATELESS_AGENT_LOOPS:
            cache[agent_name] = agent_loop
        return agent_loop

    async def _run_agent_loop(self, sampling_params, trajectory, *, agent_name: str, trace: bool = True, **kwargs):
        with rollout_trace_attr(
            step=trajectory["step"],
            sample_index=trajectory["sample_index"],
            rollout_n=trajectory["rollout_n"],
            validate=trajectory["validate"],
            name="agent_loop",
            trace=trace,
        ):
            output = await self._agent_loop(agent_name).run(sampling_params, **kwargs)
            return await self._agent_loop_postprocess(output, trajectory["validate"], **kwargs)


class AgentLoopManagerReusingLoops(AgentLoopManagerTQ):
    """verl's v1 agent-loop manager with ``AgentLoopWorkerReusingLoops`` workers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.agent_loop_workers_class = ray.remote(AgentLoopWorkerReusingLoops)
