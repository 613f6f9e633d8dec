"""Bad input fails in the driver, before Ray starts, with a message that names the offending key."""

from __future__ import annotations

import os

import pytest

from entropy_verl.config import ConfigError
from entropy_verl.validation import validate


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
]


@pytest.mark.parametrize("overrides,key,words", BAD, ids=[f"{k}:{w}" for _, k, w in BAD])
def test_bad_config_names_the_key(run_config, user_files, overrides, key, words):
    overrides = [o for o in overrides if o != "FILES"] + (user_files if "FILES" in overrides else [])
    with pytest.raises(ConfigError) as err:
        validate(run_config(*overrides))
    assert err.value.key == key and words in str(err.value), str(err.value)


def test_good_configs_pass(run_config, user_files):
    validate(run_config("experiment=embedded_entropic"))
    validate(run_config("method=w_reinforce", "entropy_verl.methods.w_reinforce.positive_weight=0.2"))
    validate(run_config("method=[top_entropy,steer,pos_adv_reweight]"))
    validate(run_config("algorithm.adv_estimator=nsr"))  # verl's key alone: the estimator's defaults
    small = ["data.train_batch_size=4", "actor_rollout_ref.actor.use_dynamic_bsz=true"]  # the 4-row file: 1 step/epoch
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
    ("mine", "1.0", [*CUSTOM, "reward.custom_reward_function.name=scor"], "reward.custom_reward_function.path", "scor"),
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
    base = ["task=gsm8k", *user_run(), "actor_rollout_ref.actor.use_dynamic_bsz=true"]  # no micro-batch sizes to fit
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
