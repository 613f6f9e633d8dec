"""``hf``: a token-in/token-out rollout server on plain transformers + torch (CPU, or a GPU when present).

Selected with ``actor_rollout_ref.rollout.name=hf``. Layout mirrors verl's vLLM backend:

- ``engine.HFGenerationEngine``  batched sampling with a KV cache (pure torch, testable without Ray)
- ``server.HFRolloutServer``     the Ray server actor verl's LLM client sends ``generate`` calls to
- ``replica.HFReplica``          launches one server per rollout replica (verl's ``RolloutReplicaRegistry``)
- ``adapter.HFServerAdapter``    lives in each trainer worker; forwards new weights to the server after each step
"""

ROLLOUT_NAME = "hf"
ADAPTER_FQN = "entropy_verl.rollout.hf.adapter.HFServerAdapter"


def load_replica_class():
    from .replica import HFReplica

    return HFReplica
