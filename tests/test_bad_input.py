"""Bad input fails in the driver, before Ray starts, with a message that names the offending key."""

import os
import subprocess
import sys

import pytest


def run_main(*overrides):
    return subprocess.run(
        [sys.executable, "-m", "entropy_verl.main", *overrides],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )


@pytest.mark.parametrize(
    "override,key,value",
    [
        ("actor_rollout_ref.rollout.name=sglang_typo", "actor_rollout_ref.rollout.name", "sglang_typo"),
        ("actor_rollout_ref.model.path=/nonexistent/model", "actor_rollout_ref.model.path", "/nonexistent/model"),
        ("data.train_files=/nonexistent/train.parquet", "data.train_files", "/nonexistent/train.parquet"),
    ],
)
def test_bad_input_fails_before_ray(override, key, value):
    out = run_main(override)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "ConfigError" in text and key in text and value in text, text[-3000:]
    assert "Started a local Ray instance" not in text and "ray init kwargs" not in text


# Entropy-control keys: composed in-process with Hydra's compose API (same config path as the CLI) and checked by
# the same start-up validation the entry point runs before Ray starts.
from hydra import compose, initialize_config_dir  # noqa: E402

from entropy_verl.main import CONFIG_DIR  # noqa: E402
from entropy_verl.validation import ConfigError, validate  # noqa: E402


def composed(config_name, overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name=config_name, overrides=overrides)


@pytest.mark.parametrize(
    "config_name,overrides,key,words",
    [
        ("embedded_entropic", ["entropy_verl.controllers.pi.target_entropy=-0.1"], "entropy_verl.controllers.pi", "target_entropy"),
        ("embedded_entropic", ["entropy_verl.controllers.pi.kp=-1"], "entropy_verl.controllers.pi", "kp"),
        ("embedded_entropic", ["entropy_verl.controllers.pi.ki=-0.01"], "entropy_verl.controllers.pi", "ki"),
        ("embedded_grpo", ["+entropy_verl.controllers.pid.target_entropy=0.1"], "entropy_verl.controllers.pid", "unknown entropy controller"),
        ("embedded_entropic", ["entropy_verl.loss.methods=[entropix]"], "entropy_verl.loss.methods", "unknown entropy loss method 'entropix'"),
        ("embedded_entropic", ["~entropy_verl.controllers.pi"], "entropy_verl.controllers", "reads coefficient 'alpha'"),
        ("embedded_entropic", ["algorithm.rollout_correction.bypass_mode=true"], "algorithm.rollout_correction.bypass_mode", "entropy"),
        ("embedded_entropic", ["trainer.v1.trainer_mode=sync"], "trainer.v1.trainer_mode", "entropy_sync"),
        ("embedded_grpo", ["trainer.n_gpus_per_node=2", "data.train_batch_size=16"], "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", "64 samples"),
        ("embedded_grpo", ["trainer.n_gpus_per_node=3"], "data.train_batch_size", "not divisible"),
        ("embedded_grpo", ["algorithm.adv_estimator=w_reinforc"], "algorithm.adv_estimator", "unknown advantage estimator 'w_reinforc'"),
        ("embedded_grpo", ["algorithm.adv_estimator=w_reinforce", "+algorithm.w_reinforce.positive_weight=-1"], "algorithm.w_reinforce", "positive_weight"),
        ("embedded_grpo", ["algorithm.adv_estimator=nsr", "+algorithm.nsr.lam=1"], "algorithm.nsr", "lam"),
        ("seed_grpo", ["algorithm.seed_grpo.answer_extractor=entropy_verl.tasks.countdown:no_such_fn"], "algorithm.seed_grpo", "no_such_fn"),
        ("embedded_grpo", ["entropy_verl.loss.methods=[pos_adv_reweight]", "+entropy_verl.loss.method_configs.pos_adv_reweight.lam=null"],
         "entropy_verl.controllers", "pos_adv_lambda"),
        ("kl_cov_global", ["actor_rollout_ref.actor.policy_loss.loss_mode=vanilla"], "actor_rollout_ref.actor.policy_loss.loss_mode", "pg_unclipped"),
        ("embedded_grpo", ["entropy_verl.loss.methods=[top_entropy]", "+entropy_verl.loss.method_configs.top_entropy.scope=global"],
         "entropy_verl.loss.method_configs.top_entropy", "scope"),
        ("embedded_grpo", ["entropy_verl.loss.methods=[adaptive_entropy_bonus]", "+entropy_verl.controllers.adaptive_entropy={}"],
         "actor_rollout_ref.actor.calculate_entropy", "adaptive_entropy_bonus"),
        ("embedded_grpo", ["entropy_verl.diagnostics.answer_extractor=entropy_verl.tasks.countdown:nope"], "entropy_verl.diagnostics", "nope"),
        ("embedded_grpo", ["+entropy_verl.diagnostics.quantiles=[0.5]"], "entropy_verl.diagnostics", "quantiles"),
        ("embedded_grpo", ["algorithm.adv_estimator=gdpo"], "algorithm.adv_estimator", "gdpo_v1"),
        ("gdpo", ["algorithm.gdpo_reward_keys=[]"], "algorithm.gdpo_reward_keys", "gdpo_reward_keys"),
        ("clip_v", ["actor_rollout_ref.model.use_fused_kernels=true"], "actor_rollout_ref.model.use_fused_kernels", "'clip_v'"),
        ("clip_v", ["+ray_kwargs.ray_init.runtime_env.env_vars.VERL_ENGINE_VENDOR=metax"],
         "ray_kwargs.ray_init.runtime_env.env_vars.VERL_ENGINE_VENDOR", "'metax'"),
        ("clip_v", ["entropy_verl.loss.method_configs.clip_v.max_frac=0"], "entropy_verl.loss.method_configs.clip_v", "max_frac"),
    ],
)
def test_bad_entropy_control_config_names_the_key(config_name, overrides, key, words):
    with pytest.raises(ConfigError) as err:
        validate(composed(config_name, overrides))
    assert err.value.key == key and words in str(err.value)


def test_good_entropy_control_configs_pass():
    validate(composed("embedded_entropic", []))
    validate(composed("embedded_grpo", ["algorithm.adv_estimator=w_reinforce", "+algorithm.w_reinforce.positive_weight=0.2"]))
    validate(composed("embedded_grpo", ["entropy_verl.loss.methods=[top_entropy,steer,pos_adv_reweight]"]))
    validate(composed("embedded_grpo", ["entropy_verl.loss.methods=[adaptive_entropy_bonus]", "+entropy_verl.controllers.adaptive_entropy={}",
                                        "actor_rollout_ref.actor.calculate_entropy=true"]))
