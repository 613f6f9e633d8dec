"""Additions to verl's training engine: Clip-V's full-vocabulary statistics in the actor's forward (``fsdp.py``), and
the chunked computation itself (``vocab_stats.py``).

Only constants are imported here: the engine class imports verl's FSDP engine, which the plugin loads lazily."""

VOCAB_STATS_VENDOR = "entropy_verl"  # VERL_ENGINE_VENDOR value that selects the vocabulary-statistics engine
VOCAB_STATS_FLAG = "entropy_verl_vocab_stats"  # batch extra_info / micro-batch non-tensor key that asks for them
VOCAB_STATS_OUTPUTS = ("sum_p2", "sum_p2_logp")  # model_output keys (and TransferQueue fields) the engine adds
ENGINE_VENDOR_KEY = "ray_kwargs.ray_init.runtime_env.env_vars.VERL_ENGINE_VENDOR"  # where entropy_verl.main sets it
