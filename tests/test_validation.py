"""Bad input fails in the driver, before Ray starts, with a message that names the offending key."""

from __future__ import annotations

import os
import warnings

import pytest

from entropy_verl.config import ConfigError
from entropy_verl.validation import NoOpWarning, validate


@pytest.mark.parametrize(
    "override,key,value",
    [
        ("actor_rollout_ref.rollout.name=sglang_typo", "actor_rollout_ref.rollout.name", "sglang_typo"),
        ("actor_rollout_ref.model.path=/nonexistent/model", "actor_rollout_ref.model.path", "/nonexistent/model"),
        ("+entropy_verl.methods.clip_bb={}", "entropy_verl.methods.clip_bb", "did you mean 'clip_b'"),
    ],
)
def test_bad_input_fails_before_ray(run_main, override, key, value):
    out = run_main(override)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "ConfigError" in text and key in text and value in text, text[-3000:]
    assert "Started a local Ray instance" not in text and "ray init kwargs" not in text


@pytest.fixture
def user_files(user_run):
    """Overrides naming a model directory and GSM8K-style parquet files in verl's RL format."""
    return user_run()


BAD = [
    (["method=[clip_b,steer,clip_b]"], "method", "lists ['clip_b'] more than once"),
    # run length and worker counts verl would divide by, or train nothing with
    (["trainer.total_training_steps=0"], "trainer.total_training_steps", "at least one step"),
    (["trainer.n_gpus_per_node=0"], "trainer.n_gpus_per_node", "positive whole number"),
    (["trainer.nnodes=1.5"], "trainer.nnodes", "positive whole number"),
    # a relative data path is local too: checked from the working directory
    (["data.train_files=data/missing.parquet"], "data.train_files", "'data/missing.parquet' does not exist"),
    (["entropy_verl.safety.max_nonfinite_steps=0"], "entropy_verl.safety", "must be >= 1"),
    (["entropy_verl.safety.max_nonfinite_steps=true"], "entropy_verl.safety.max_nonfinite_steps", "expected"),
    (["+entropy_verl.safety.max_nan_steps=2"], "entropy_verl.safety.max_nan_steps", "did you mean"),
    # method and controller blocks: unknown names and settings (with the closest valid one), types, NaN
    (["+entropy_verl.methods.entropix={}"], "entropy_verl.methods.entropix", "did you mean 'entropic'"),
    (["+entropy_verl.controllers.pid.target_entropy=0.1"], "entropy_verl.controllers.pid", "did you mean 'pi'"),
    (["method=clip_b", "+entropy_verl.methods.clip_b.muu=1.0"], "entropy_verl.methods.clip_b.muu", "did you mean 'mu'"),
    (
        ["method=nsr", "+entropy_verl.methods.nsr.positive_weight=0.2"],
        "entropy_verl.methods.nsr.positive_weight",
        "no such setting",
    ),
    (["+entropy_verl.method.clip_b={}"], "entropy_verl.method", "did you mean 'methods'"),
    (["entropy_verl.methods=clip_b"], "entropy_verl.methods", "expected a mapping"),
    (["method=clip_b", "entropy_verl.methods.clip_b.mu=true"], "entropy_verl.methods.clip_b.mu", "expected a number"),
    (["method=clip_b", "entropy_verl.methods.clip_b.scope=global"], "entropy_verl.methods.clip_b.scope", "'step'"),
    (
        ["method=entropic", "entropy_verl.controllers.pi.p_only='false'"],
        "entropy_verl.controllers.pi.p_only",
        "true or false",
    ),
    (
        ["method=entropic", "entropy_verl.controllers.pi.target_entropy=nan"],
        "entropy_verl.controllers.pi.target_entropy",
        "finite",
    ),
    (
        ["method=entropic", "entropy_verl.controllers.pi.target_entropy=-0.1"],
        "entropy_verl.controllers.pi",
        "target_entropy",
    ),
    (["method=entropic", "entropy_verl.controllers.pi.kp=-1"], "entropy_verl.controllers.pi", "kp"),
    (["method=clip_v", "entropy_verl.methods.clip_v.max_frac=0"], "entropy_verl.methods.clip_v", "max_frac"),
    (
        ["method=w_reinforce", "entropy_verl.methods.w_reinforce.positive_weight=-1"],
        "entropy_verl.methods.w_reinforce",
        "positive_weight",
    ),
    # what methods and controllers need from each other and from verl's settings
    (["method=entropic", "~entropy_verl.controllers.pi"], "entropy_verl.controllers", "reads 'alpha'"),
    (
        ["method=entropic", "~entropy_verl.methods.entropic"],
        "entropy_verl.controllers.pi",
        "read by no configured method",
    ),
    (
        ["method=pos_adv_reweight", "entropy_verl.methods.pos_adv_reweight.lam=null"],
        "entropy_verl.controllers",
        "pos_adv_lambda",
    ),
    (["method=nsr", "algorithm.adv_estimator=grpo"], "entropy_verl.methods.nsr", "algorithm.adv_estimator"),
    (
        ["method=adaptive_entropy", "actor_rollout_ref.actor.calculate_entropy=false"],
        "actor_rollout_ref.actor.calculate_entropy",
        "adaptive_entropy_bonus",
    ),
    (
        ["method=kl_cov_global", "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla"],
        "actor_rollout_ref.actor.policy_loss.loss_mode",
        "pg_unclipped",
    ),
    (
        ["method=entropic", "algorithm.rollout_correction.bypass_mode=true"],
        "algorithm.rollout_correction.bypass_mode",
        "entropy",
    ),
    (["method=entropic", "trainer.v1.trainer_mode=sync"], "trainer.v1.trainer_mode", "entropy_sync"),
    # verl's separate_async: what its trainer asserts while building workers, and the engine CPU can run
    (
        ["trainer.v1.trainer_mode=entropy_separate_async", "trainer.v1.separate_async.parameter_sync_step=2"],
        "data.train_batch_size",
        "32 != ",
    ),
    (["trainer.v1.trainer_mode=entropy_separate_async"], "actor_rollout_ref.rollout.nnodes", "own resource pool"),
    (
        ["trainer.v1.trainer_mode=entropy_separate_async", "actor_rollout_ref.rollout.nnodes=1"],
        "actor_rollout_ref.rollout.checkpoint_engine.backend",
        "on CPU: ray_store",
    ),
    (
        [
            "trainer.v1.trainer_mode=entropy_separate_async",
            "actor_rollout_ref.rollout.nnodes=1",
            "actor_rollout_ref.rollout.checkpoint_engine.backend=nccl",
        ],
        "actor_rollout_ref.rollout.checkpoint_engine.backend",
        "'nccl' needs an accelerator",
    ),
    (  # log-probs are computed per local update: 32 prompts x 8 samples / parameter_sync_step 4 = 64 samples
        [
            "trainer.v1.trainer_mode=entropy_separate_async",
            "actor_rollout_ref.rollout.nnodes=1",
            "actor_rollout_ref.rollout.checkpoint_engine.backend=ray_store",
        ],
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu",
        "128 does not divide the 64 samples",
    ),
    # dynamic batch sizes: verl would pad the step with no-op samples (3 nodes x 8 GPUs: 4,096 samples -> 6,144)
    (["hardware=cluster_gpu", "task=gsm8k", "trainer.nnodes=3"], "data.train_batch_size", "to 6144"),
    (
        ["hardware=cluster_gpu", "task=gsm8k", "actor_rollout_ref.actor.ppo_mini_batch_size=100"],
        "actor_rollout_ref.actor.ppo_mini_batch_size",
        "to 4800",
    ),
    # a paper's entropy target at another sampling temperature than it was given at
    (["method=entropic"], "entropy_verl.controllers.pi.target_temperature", "temperature 0.6"),
    (
        ["method=adaptive_entropy", "actor_rollout_ref.rollout.temperature=0.6"],
        "entropy_verl.controllers.adaptive_entropy.target_temperature",
        "actor_rollout_ref.rollout.temperature=0.6",
    ),
    (
        ["method=entropic", "entropy_verl.controllers.pi.target_temperature=0"],
        "entropy_verl.controllers.pi",
        "target_temperature must be > 0",
    ),
    (
        ["method=clip_v", "actor_rollout_ref.model.use_fused_kernels=true"],
        "actor_rollout_ref.model.use_fused_kernels",
        "'clip_v'",
    ),
    (
        ["method=clip_v", "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_ENGINE_VENDOR=metax"],
        "ray_kwargs.ray_init.runtime_env.env_vars.VERL_ENGINE_VENDOR",
        "'metax'",
    ),
    (["algorithm.adv_estimator=w_reinforc"], "algorithm.adv_estimator", "unknown advantage estimator 'w_reinforc'"),
    (["algorithm.adv_estimator=gdpo"], "algorithm.adv_estimator", "gdpo_v1"),
    # the task: its functions fit its data, tuned values stay on the task they were tuned on
    (
        ["entropy_verl.task.final_answer=entropy_verl.tasks.gsm8k:final_answer"],
        "entropy_verl.task.final_answer",
        "'openai/gsm8k'",
    ),
    (
        ["entropy_verl.task.answer_extractor=entropy_verl.tasks.countdown:nope"],
        "entropy_verl.task.answer_extractor",
        "nope",
    ),
    (["+entropy_verl.task.extractor=x"], "entropy_verl.task.extractor", "did you mean"),
    (["+entropy_verl.diagnostics.quantiles=[0.5]"], "entropy_verl.diagnostics.quantiles", "no such setting"),
    (["task=gsm8k", "experiment=embedded_entropic", "FILES"], "entropy_verl.tuned_on", "'countdown3'"),
    (["task=gsm8k", "method=gdpo", "FILES"], "entropy_verl.methods.gdpo_v1", "reward_components"),
    (
        [
            "task=custom",
            "entropy_verl.task.data_source=mine",
            "reward.custom_reward_function.path=${module_file:entropy_verl.tasks.countdown}",
            "reward.custom_reward_function.name=compute_score",
            "FILES",
        ],
        "reward.custom_reward_function.path",
        "'countdown3'",
    ),
    (
        ["task=gsm8k", "reward.custom_reward_function.path=/r.py", "FILES"],
        "reward.custom_reward_function.path",
        "verl's default scorer",
    ),
    (
        [
            "task=custom",
            "method=seed_grpo",
            "entropy_verl.task.data_source=mine",
            "reward.custom_reward_function.path=/r.py",
            "reward.custom_reward_function.name=f",
            "FILES",
        ],
        "entropy_verl.task.final_answer",
        "seed_grpo",
    ),
    (["task=gsm8k"], "actor_rollout_ref.model.path", "not set"),
    (["task=custom", "FILES"], "entropy_verl.task.data_source", "not set"),
    (["task=custom", "entropy_verl.task.data_source=mine", "FILES"], "reward.custom_reward_function.path", "not set"),
    # verl settings that would fail inside a worker after start-up
    (
        ["trainer.n_gpus_per_node=2", "data.train_batch_size=16"],
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu",
        "64 samples",
    ),
    (["trainer.n_gpus_per_node=3"], "data.train_batch_size", "not divisible"),
    # verl's own keys (entropy_verl/verl_keys.py). Types of verl's typed sections, from its dataclasses' fields:
    (["actor_rollout_ref.actor.optim.lr=nan"], "actor_rollout_ref.actor.optim.lr", "finite number, got nan"),
    (["actor_rollout_ref.actor.optim.lr=fast"], "actor_rollout_ref.actor.optim.lr", "expected a number, got 'fast'"),
    (["actor_rollout_ref.actor.entropy_coeff=inf"], "actor_rollout_ref.actor.entropy_coeff", "finite number"),
    (["actor_rollout_ref.actor.clip_ratio_high=nan"], "actor_rollout_ref.actor.clip_ratio_high", "finite number"),
    (["actor_rollout_ref.actor.optim.weight_decay=nan"], "actor_rollout_ref.actor.optim.weight_decay", "finite"),
    (["algorithm.gamma=nan"], "algorithm.gamma", "AlgoConfig.gamma"),
    (["actor_rollout_ref.actor.ppo_epochs=1.5"], "actor_rollout_ref.actor.ppo_epochs", "expected an integer"),
    (["actor_rollout_ref.actor.use_kl_loss='true'"], "actor_rollout_ref.actor.use_kl_loss", "true or false"),
    (["actor_rollout_ref.rollout.temperature=nan"], "actor_rollout_ref.rollout.temperature", "RolloutConfig"),
    # ... the declared ranges of the numeric keys verl reads unchecked (verl_keys.KEYS)
    (["actor_rollout_ref.actor.optim.lr=-1e-6"], "actor_rollout_ref.actor.optim.lr", "expected > 0"),
    (["actor_rollout_ref.actor.optim.lr=0"], "actor_rollout_ref.actor.optim.lr", "0 trains nothing"),
    (["actor_rollout_ref.actor.optim.weight_decay=-0.1"], "actor_rollout_ref.actor.optim.weight_decay", ">= 0"),
    (
        ["actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=2"],
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio",
        "[0, 1]",
    ),
    (["actor_rollout_ref.actor.optim.lr_warmup_steps=null"], "actor_rollout_ref.actor.optim.lr_warmup_steps", "use -1"),
    (["actor_rollout_ref.actor.optim.min_lr_ratio=2"], "actor_rollout_ref.actor.optim.min_lr_ratio", "[0, 1]"),
    (["actor_rollout_ref.actor.optim.clip_grad=-1"], "actor_rollout_ref.actor.optim.clip_grad", "reverses"),
    (["actor_rollout_ref.actor.optim.betas=[0.9,1.5]"], "actor_rollout_ref.actor.optim.betas", "[0, 1)"),
    (["actor_rollout_ref.actor.clip_ratio_low=-0.2"], "actor_rollout_ref.actor.clip_ratio_low", "[0, 1]"),
    (["actor_rollout_ref.actor.clip_ratio_c=0.5"], "actor_rollout_ref.actor.clip_ratio_c", "expected > 1"),
    (["actor_rollout_ref.actor.kl_loss_coef=-1"], "actor_rollout_ref.actor.kl_loss_coef", "drift"),
    (["actor_rollout_ref.actor.ppo_epochs=0"], "actor_rollout_ref.actor.ppo_epochs", ">= 1"),
    (["actor_rollout_ref.actor.ppo_mini_batch_size=0"], "actor_rollout_ref.actor.ppo_mini_batch_size", ">= 1"),
    (
        ["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=0"],
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
        "splits by it",
    ),
    (
        ["method=clip_cov", "actor_rollout_ref.actor.policy_loss.clip_cov_ratio=0"],
        "actor_rollout_ref.actor.policy_loss.clip_cov_ratio",
        "(0, 1]",
    ),
    (["trainer.total_epochs=0"], "trainer.total_epochs", "0 trains nothing"),
    (["trainer.save_freq=1.5"], "trainer.save_freq", "expected an integer"),
    (["data.max_prompt_length=0"], "data.max_prompt_length", ">= 1"),
    (["data.max_response_length=-5"], "data.max_response_length", "is -5"),
    (["actor_rollout_ref.rollout.temperature=0"], "actor_rollout_ref.rollout.temperature", "greedily"),
    (["actor_rollout_ref.rollout.top_p=1.5"], "actor_rollout_ref.rollout.top_p", "(0, 1]"),
    (["actor_rollout_ref.rollout.n=0"], "actor_rollout_ref.rollout.n", ">= 1"),
    (
        ["actor_rollout_ref.rollout.gpu_memory_utilization=1.5"],
        "actor_rollout_ref.rollout.gpu_memory_utilization",
        "(0, 1]",
    ),
    (["actor_rollout_ref.rollout.val_kwargs.n=0"], "actor_rollout_ref.rollout.val_kwargs.n", ">= 1"),
    (["algorithm.lam=2"], "algorithm.lam", "[0, 1]"),
    (
        ["algorithm.use_kl_in_reward=true", "algorithm.kl_ctrl.kl_coef=-1"],
        "algorithm.kl_ctrl.kl_coef",
        "drift",
    ),
    # ... what verl's dataclasses refuse (__post_init__, validate), built as its trainer and workers build them
    (
        ["actor_rollout_ref.actor.loss_agg_mode=token-meen"],
        "actor_rollout_ref.actor",
        "Invalid loss_agg_mode: token-meen",
    ),
    (
        ["actor_rollout_ref.actor.optim.lr_scheduler_type=cosin"],
        "actor_rollout_ref.actor.optim",
        "FSDPOptimizerConfig refuses it: AssertionError: assert self.lr_scheduler_type",
    ),
    (["actor_rollout_ref.actor.ppo_mini_batch_size=64"], "actor_rollout_ref.actor", "train_batch_size (32) must be"),
    (
        ["actor_rollout_ref.actor.use_kl_loss=true", "+actor_rollout_ref.ref.log_prob_micro_batch_size=4"],
        "actor_rollout_ref.ref",
        "You have set both",
    ),
    (["algorithm.adv_estimator=gae"], "critic", "Please set at least one of 'critic.micro_batch_size'"),
    (["MODEL", "actor_rollout_ref.model.target_modules=5"], "actor_rollout_ref.model", "target_modules must be"),
    # ... the names verl looks up, and settings that fail together
    (
        ["actor_rollout_ref.actor.policy_loss.loss_mode=vanila"],
        "actor_rollout_ref.actor.policy_loss.loss_mode",
        "Unsupported loss mode",
    ),
    (
        ["actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.kl_loss_type=full"],
        "actor_rollout_ref.actor.kl_loss_type",
        "no KL estimator 'full'",
    ),
    (
        ["hardware=cluster_gpu", "task=gsm8k", "FILES", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096"],
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
        "= 10240 tokens",
    ),
    (
        ["actor_rollout_ref.rollout.val_kwargs.temperature=0"],
        "actor_rollout_ref.rollout.val_kwargs.temperature",
        "greedy",
    ),
    # ... file lists and paths
    (["data.train_files=[]"], "data.train_files", "name at least one"),
    (["data.val_files=[]"], "data.val_files", "name at least one"),
    (["reward.custom_reward_function.path=/nope.py"], "reward.custom_reward_function.path", "'/nope.py' is no file"),
    (["reward.custom_reward_function.name=nope"], "reward.custom_reward_function.name", "defines no 'nope'"),
    # ... targets no policy or reward can reach: entropy above ln(vocabulary), thresholds outside the reward's range
    (
        [
            "method=entropic",
            "actor_rollout_ref.rollout.temperature=0.6",
            "entropy_verl.controllers.pi.target_entropy=5",
        ],
        "entropy_verl.controllers.pi.target_entropy",
        "ln(22) = 3.091",  # the embedded default's 22 tokens
    ),
    (
        [
            "MODEL",
            "method=adaptive_entropy",
            "entropy_verl.controllers.adaptive_entropy.target_entropy=3.2",
        ],
        "entropy_verl.controllers.adaptive_entropy.target_entropy",
        "config.json",  # a local model's vocab_size
    ),
    (["MODEL", "data.max_response_length=60"], "data.max_response_length", "max_position_embeddings 64"),
    (["entropy_verl.diagnostics.correct_threshold=2"], "entropy_verl.diagnostics.correct_threshold", "no response"),
    (["entropy_verl.diagnostics.correct_threshold=0"], "entropy_verl.diagnostics.correct_threshold", "every response"),
    (
        ["task=gsm8k", "FILES", "entropy_verl.diagnostics.correct_threshold=1.5"],
        "entropy_verl.diagnostics.correct_threshold",
        "[0, 1]",  # verl's GSM8K scorer: 0 or 1
    ),
    (
        ["method=nsr", "entropy_verl.methods.nsr.correct_threshold=1"],
        "entropy_verl.methods.nsr.correct_threshold",
        "no response",
    ),
]


@pytest.fixture
def hf_model(tmp_path):
    """A local Hugging Face model directory as verl reads one before loading weights: the embedded default's tokenizer
    files and a Qwen2 config.json (vocabulary 22, 64 positions), no weights."""
    import json

    from entropy_verl.embedded.tokenizer import write_tokenizer_files

    path = tmp_path / "hf_model"
    write_tokenizer_files(str(path), write_model_config=False)
    hf_config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 22}
    hf_config.update(max_position_embeddings=64, hidden_size=64, num_hidden_layers=1, intermediate_size=64)
    hf_config.update(num_attention_heads=2, num_key_value_heads=2)
    (path / "config.json").write_text(json.dumps(hf_config))
    return path


def expand(overrides, user_files, hf_model) -> list[str]:
    """A row's overrides with FILES (user data and an empty model directory) and MODEL (``hf_model``) spelled out."""
    out = [o for o in overrides if o not in ("FILES", "MODEL")] + (user_files if "FILES" in overrides else [])
    return out + ([f"actor_rollout_ref.model.path={hf_model}"] if "MODEL" in overrides else [])


@pytest.mark.parametrize("overrides,key,words", BAD, ids=[f"{k}:{w}" for _, k, w in BAD])
def test_bad_config_names_the_key(run_config, user_files, hf_model, overrides, key, words):
    with pytest.raises(ConfigError) as err:
        validate(run_config(*expand(overrides, user_files, hf_model)))
    assert err.value.key == key and words in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        # verl's documented "off" values
        ["trainer.save_freq=0"],
        ["trainer.save_freq=-1", "trainer.test_freq=-1"],
        ["trainer.test_freq=0"],
        ["trainer.max_actor_ckpt_to_keep=null"],
        ["trainer.max_actor_ckpt_to_keep=0"],
        ["trainer.total_training_steps=null"],
        ["actor_rollout_ref.actor.optim.lr_warmup_steps=-1"],
        ["actor_rollout_ref.actor.optim.lr_warmup_steps=0", "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0.1"],
        ["actor_rollout_ref.actor.optim.min_lr_ratio=null"],
        ["data.train_max_samples=-1", "data.val_max_samples=0"],
        ["actor_rollout_ref.rollout.top_k=0"],  # the hf rollout's off
        ["actor_rollout_ref.rollout.top_k=-1", "actor_rollout_ref.rollout.top_p=1.0"],  # vLLM's
        ["actor_rollout_ref.rollout.val_kwargs.do_sample=false", "actor_rollout_ref.rollout.val_kwargs.temperature=0"],
        # legal choices that look like mistakes
        ["actor_rollout_ref.actor.entropy_coeff=-0.01"],  # entropy minimisation
        ["actor_rollout_ref.actor.clip_ratio_high=0.28"],  # Clip-Higher
        ["algorithm.kl_ctrl.kl_coef=-1"],  # not read: no in-reward KL
        ["actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.kl_loss_type=k3+"],
        ["algorithm.adv_estimator=gae", "critic.ppo_micro_batch_size_per_gpu=8"],
        [
            "method=entropic",
            "actor_rollout_ref.rollout.temperature=0.6",
            "entropy_verl.controllers.pi.target_entropy=3",
        ],
        ["MODEL"],
        ["MODEL", "method=entropic", "actor_rollout_ref.rollout.temperature=0.6"],
        ["hardware=cluster_gpu"],  # the embedded default at the cluster's lengths: the method-file tests compose it
    ],
)
def test_verls_off_values_and_legal_settings_pass(run_config, user_files, hf_model, overrides):
    validate(run_config(*expand(overrides, user_files, hf_model)))


def test_a_reward_function_defined_or_imported_under_a_condition_is_found(run_config, tmp_path):
    """The reward file is read, not run: top-level definitions, imports and assignments (also under if/try) count."""
    source = (
        "try:\n    from math import fsum as score\nexcept ImportError:\n    pass\n"
        "if True:\n    def other(*a, **k):\n        return 0.0\nalias = other\n"
    )
    (tmp_path / "r.py").write_text(source)
    for name in ("score", "other", "alias"):
        overrides = [
            f"reward.custom_reward_function.path={tmp_path / 'r.py'}",
            f"reward.custom_reward_function.name={name}",
        ]
        validate(run_config(*overrides))


def test_good_configs_pass(run_config, user_files):
    validate(run_config("experiment=embedded_entropic"))
    validate(run_config("method=w_reinforce", "entropy_verl.methods.w_reinforce.positive_weight=0.2"))
    validate(run_config("method=[top_entropy,steer,pos_adv_reweight]"))
    validate(run_config("algorithm.adv_estimator=nsr"))  # verl's key alone: the estimator's defaults
    small = [  # the 4-row file: 1 step/epoch, and mini-batches that fit it (verl would pad a larger one)
        "data.train_batch_size=4",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.use_dynamic_bsz=true",
    ]
    validate(run_config("task=gsm8k", "method=seed_grpo", *user_files, *small))
    parsed = validate(
        run_config("method=adaptive_entropy", "entropy_verl.controllers.adaptive_entropy.target_entropy=0.4")
    )
    assert [s.name for s, _ in parsed.controllers] == ["adaptive_entropy"] and parsed.controllers[0][
        1
    ].target_entropy == 0.4


SCORE = "def score(data_source, solution_str, ground_truth, extra_info=None):\n    return {body}\n"
CUSTOM = ["task=custom", "entropy_verl.task.data_source=mine"]
REWARD_BAD = [
    # (data_source of the data's rows, reward function body or None, overrides, key, words)
    ("mine", None, ["task=gsm8k"], "entropy_verl.task.data_source", "rows have data_source 'mine'"),
    ("mine", "'yes'", CUSTOM, "reward.custom_reward_function.name", "expected a finite number"),
    ("mine", "float('nan')", CUSTOM, "reward.custom_reward_function.name", "expected a finite number"),
    ("mine", "{'acc': 1.0}", CUSTOM, "reward.custom_reward_function.name", "'score'"),
    ("mine", "extra_info['missing']", CUSTOM, "reward.custom_reward_function.name", "failed on the first training row"),
    ("mine", "1.0", [*CUSTOM, "reward.custom_reward_function.name=scor"], "reward.custom_reward_function.name", "scor"),
    ("mine", None, [*CUSTOM, "entropy_verl.task.scorer=verl"], "entropy_verl.task.data_source", "no default scorer"),
    (
        "mine",
        "0.0",
        [*CUSTOM, "method=gdpo", "entropy_verl.task.reward_components=[format]"],
        "entropy_verl.task.reward_components",
        "['format']",
    ),
]


@pytest.mark.parametrize("data_source,body,overrides,key,words", REWARD_BAD, ids=[f"{r[3]}:{r[4]}" for r in REWARD_BAD])
def test_the_reward_function_is_called_on_the_runs_data_before_ray(
    run_config, user_run, data_source, body, overrides, key, words
):
    files = user_run(data_source, reward=None if body is None else SCORE.format(body=body))
    with pytest.raises(ConfigError) as err:
        validate(run_config("hardware=cluster_gpu", *files, *overrides))
    assert err.value.key == key and words in str(err.value), str(err.value)


def test_a_reward_with_the_components_gdpo_needs_passes(run_config, user_run):
    body = "{'score': 0.0, 'format': 1.0, 'correct': 0.0}"
    files = user_run("mine", reward=SCORE.format(body=body))
    parsed = validate(
        run_config(
            "hardware=cluster_gpu",
            *CUSTOM,
            "method=gdpo",
            "entropy_verl.task.reward_components=[format,correct]",
            *files,
        )
    )
    assert parsed.estimator[0].name == "gdpo_v1"


def test_every_config_on_the_cluster_base_passes_or_names_what_is_missing(run_config, user_run):
    """Every method file and experiment composed with hardware=cluster_gpu, task=gsm8k and a small user dataset in
    verl's RL format: start-up validation (verl's scorer called on a row included) passes, or names what the user
    must add: GDPO's reward components (verl's GSM8K scorer returns one number), EntroPIC's target for the cluster's
    sampling temperature, and a tuned experiment's task."""
    from entropy_verl.main import group_options

    files = user_run()
    failures = {}
    for selection in [f"method={m}" for m in group_options("method")] + [
        f"experiment={e}" for e in group_options("experiment")
    ]:
        try:
            validate(run_config("hardware=cluster_gpu", "task=gsm8k", selection, *files))
        except ConfigError as exc:
            failures[selection] = exc.key
    assert failures == {
        "method=gdpo": "entropy_verl.methods.gdpo_v1",
        "method=entropic": "entropy_verl.controllers.pi.target_temperature",  # the paper's 0.1 is at 0.6, not 1.0
        "experiment=embedded_entropic": "entropy_verl.tuned_on",
    }


def test_a_data_file_without_verls_columns_is_named_before_ray(run_config, user_run, tmp_path):
    import pandas as pd

    files = user_run()
    pd.DataFrame({"question": ["What is 1 + 2?"], "data_source": ["openai/gsm8k"]}).to_parquet(tmp_path / "bad.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    for name, words in (("bad.parquet", "has no ['prompt', 'reward_model'] column(s)"), ("text.parquet", "parquet")):
        with pytest.raises(ConfigError) as err:
            validate(run_config("task=gsm8k", *files, f"data.val_files={tmp_path / name}"))
        assert err.value.key == "data.val_files" and words in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "content,words",
    [
        ("{not json", "cannot be read"),
        ('{"controllers": {}}', "no state for controller(s) ['pi']"),
        (None, "no controller"),
    ],
)
def test_controller_state_that_cannot_be_read_names_the_file_before_ray(run_config, tmp_path, content, words):
    step = tmp_path / "ckpt" / "global_step_4"
    step.mkdir(parents=True)
    (tmp_path / "ckpt" / "latest_checkpointed_iteration.txt").write_text("4")
    if content is not None:
        (step / "entropy_controllers.json").write_text(content)
    config = run_config(
        "experiment=embedded_entropic", "trainer.resume_mode=auto", f"trainer.default_local_dir={tmp_path / 'ckpt'}"
    )
    with pytest.raises(ConfigError) as err:
        validate(config)
    assert err.value.key == "trainer.resume_mode" and words in str(err.value) and str(step) in str(err.value)


def test_the_readmes_keys_for_verls_own_entry_point_pass_our_checks_on_verls_config():
    """The README's ``python -m verl.trainer.main_ppo`` example, composed on verl's own ppo_trainer config, parses and
    passes the entropy-control and task checks the trainer runs at construction."""
    import re

    import verl
    from hydra import compose, initialize_config_dir

    from entropy_verl.config import objective, parse
    from entropy_verl.validation import check_entropy_control, check_task

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    (block,) = re.findall(r"python -m verl\.trainer\.main_ppo <your config and overrides> \\\n(.*?)\n```", readme, re.S)
    overrides = [token for token in block.split() if "=" in token]
    assert "trainer.v1.trainer_mode=entropy_sync" in overrides and len(overrides) >= 4, overrides
    with initialize_config_dir(
        config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), version_base=None
    ):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    parsed = parse(config)
    check_entropy_control(config, parsed, in_trainer=True)
    check_task(config, parsed)
    estimator = config.algorithm.adv_estimator  # the user's own (verl's default: gae)
    assert objective(config, parsed) == f"advantages: {estimator} | weights: clip_b | loss: vanilla"


def test_a_list_of_data_sources_must_all_be_declared_by_the_task_functions(run_config):
    # the countdown functions are written for countdown3 only
    two = "entropy_verl.task.data_source=[countdown3,countdown3_b]"
    with pytest.raises(ConfigError) as err:
        validate(run_config(two))
    assert err.value.key == "entropy_verl.task.answer_extractor" and "countdown3_b" in str(err.value)
    parsed = validate(run_config("entropy_verl.task.data_source=[countdown3]"))  # a list of one is fine
    assert parsed.task.data_sources == ("countdown3",)


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["data.train_batch_size=2", "trainer.total_epochs=2", "trainer.total_training_steps=5"], ">= 3"),
        (["data.train_batch_size=8", "trainer.total_epochs=9", "trainer.total_training_steps=1"], "fewer rows"),
    ],
)
def test_steps_the_data_cannot_give_are_refused_before_ray(run_config, user_run, overrides, words):
    # the user's training file has 4 rows: 4 // 2 = 2 steps an epoch (verl drops a last partial batch)
    # no micro-batch sizes to fit, and a mini-batch of one prompt, which every batch here holds whole (no padding)
    base = [
        "task=gsm8k",
        *user_run(),
        "actor_rollout_ref.actor.use_dynamic_bsz=true",
        "actor_rollout_ref.actor.ppo_mini_batch_size=1",
    ]
    with pytest.raises(ConfigError) as err:
        validate(run_config(*base, *overrides))
    assert err.value.key == "trainer.total_epochs" and words in str(err.value), str(err.value)
    assert "end the run at step" in str(err.value)
    validate(run_config(*base, "data.train_batch_size=2", "trainer.total_epochs=2", "trainer.total_training_steps=4"))


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=entropic", "actor_rollout_ref.rollout.temperature=0.6"],  # the paper's sampling
        [
            "method=entropic",
            "entropy_verl.controllers.pi.target_entropy=0.3",
            "entropy_verl.controllers.pi.target_temperature=1.0",
        ],
        ["method=entropic", "entropy_verl.controllers.pi.target_temperature=null"],  # not stated: the user's call
        ["experiment=embedded_entropic"],  # tuned at the embedded default's temperature 1.0
        ["method=adaptive_entropy"],  # Skywork-OR1 samples at 1.0, as the embedded default does
    ],
)
def test_an_entropy_target_at_its_own_sampling_temperature_passes(run_config, overrides):
    validate(run_config(*overrides))


def test_a_cluster_batch_verl_need_not_pad_passes(run_config):
    from entropy_verl.validation import check_batch_divisibility

    for nodes, prompts in ((1, 512), (2, 512), (3, 384), (4, 512)):
        check_batch_divisibility(
            run_config(
                "hardware=cluster_gpu", "task=gsm8k", f"trainer.nnodes={nodes}", f"data.train_batch_size={prompts}"
            )
        )


ONE_UPDATE = ["data.train_batch_size=16", "actor_rollout_ref.actor.ppo_mini_batch_size=16"]  # one epoch, one mini-batch
TWO_UPDATES = ["data.train_batch_size=16", "actor_rollout_ref.actor.ppo_mini_batch_size=8"]


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["method=clip_higher", *ONE_UPDATE], "clip_ratio_high=0.28: clip-higher (clip_ratio_low=0.2) never clips"),
        (["method=cispo", *ONE_UPDATE], "loss_mode=cispo: CISPO"),
        (["method=kl_cov", *ONE_UPDATE], "loss_mode=kl_cov: KL-Cov"),
        (["method=kl_cov_global", *ONE_UPDATE], "kl_cov_global acts only through the importance ratio"),
        (["method=sent", *ONE_UPDATE], "sent acts only through the importance ratio"),
        (["method=entropy_adv", "entropy_verl.methods.entropy_adv.alpha=0"], "entropy_adv changes nothing: alpha is 0"),
        (["method=top_entropy", "entropy_verl.methods.top_entropy.rho=1"], "top_entropy changes nothing: rho is 1"),
        (["method=steer", "entropy_verl.methods.steer.lambda_min=1"], "steer changes nothing: lambda_min is 1"),
        (["method=pos_adv_reweight", "entropy_verl.methods.pos_adv_reweight.lam=1"], "pos_adv_reweight changes"),
        (["method=entropy_bonus", "entropy_verl.methods.entropy_bonus.coef=[[0,0],[50,0]]"], "coef is 0"),
    ],
)
def test_a_method_that_cannot_act_is_warned_about_naming_it_and_what_would_make_it_act(run_config, overrides, words):
    with pytest.warns(NoOpWarning) as caught:
        validate(run_config(*overrides))
    (message,) = [str(w.message) for w in caught if w.category is NoOpWarning]
    assert words in message
    if "ratio" in message:  # the settings that would make it act
        assert "ppo_epochs > 1 or a ppo_mini_batch_size that splits the step" in message


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=clip_higher", *TWO_UPDATES],
        ["method=clip_higher", *ONE_UPDATE, "actor_rollout_ref.actor.ppo_epochs=2"],
        ["method=cispo"],  # the embedded default: 4 mini-batches a step
        ["method=kl_cov_global", *TWO_UPDATES],
        ["method=entropy_bonus", "entropy_verl.methods.entropy_bonus.coef=[[0,1e-3],[50,0]]"],  # 0 only at the end
        ["method=clip_cov", *ONE_UPDATE],  # detaches tokens' gradients: acts on-policy too
        ["method=grpo", *ONE_UPDATE],
    ],
)
def test_a_method_that_acts_is_not_warned_about(run_config, overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoOpWarning)
        validate(run_config(*overrides))
