"""trainer_configs/: the groups compose (verl's ppo_trainer + hardware + task + method [+ experiment]) and pass the
start-up checks. Registered methods' own files are covered by the registry contract (tests/test_registry.py); this
file covers verl's own methods, the experiments, the tasks and how the groups combine."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from entropy_verl.main import CONFIG_DIR, group_options, selection
from entropy_verl.validation import validate

ZOO = {
    "grpo",
    "clip_higher",
    "cispo",
    "dr_grpo",
    "opo",
    "clip_cov",
    "kl_cov",
    "clip_cov_global",
    "kl_cov_global",
    "sent",
    "top_entropy",
    "entropy_adv",
    "pos_adv_reweight",
    "pos_adv_reweight_guided",
    "clip_b",
    "clip_v",
    "steer",
    "entropic",
    "adaptive_entropy",
    "w_reinforce",
    "psr",
    "nsr",
    "unlikeliness",
    "seed_grpo",
    "gdpo",
}
METHOD_DIR = f"{CONFIG_DIR}/method"
VERL_ONLY = [m for m in group_options("method") if not OmegaConf.load(f"{METHOD_DIR}/{m}.yaml").get("entropy_verl")]


def test_the_groups_hold_every_method_and_no_name_twice():
    assert ZOO <= set(group_options("method"))
    assert set(group_options("hardware")) == {"embedded_cpu", "embedded_cpu_vllm", "cluster_gpu"}
    assert {"countdown", "gsm8k", "custom"} <= set(group_options("task"))
    assert "embedded_entropic" in group_options("experiment")
    assert not set(group_options("method")) & set(group_options("experiment"))  # a name selects one thing
    assert selection("clip_b") == "method=clip_b" and selection("embedded_entropic") == "experiment=embedded_entropic"
    with pytest.raises(ValueError, match="no method or experiment"):
        selection("clip_bb")


def test_the_default_run_is_grpo_on_the_embedded_default(run_config):
    config = run_config()
    parsed = validate(config)
    assert not parsed.methods and not parsed.controllers and config.algorithm.adv_estimator == "grpo"
    assert config.trainer.experiment_name == "grpo" and config.actor_rollout_ref.rollout.name == "hf"
    assert config.entropy_verl.task.data_source == "countdown3" and config.trainer.v1.trainer_mode == "entropy_sync"


def test_methods_compose_and_name_the_run(run_config):
    config = run_config("method=[entropy_adv,top_entropy,steer]", "data.seed=3")
    parsed = validate(config)
    assert [s.name for s, _ in parsed.methods] == ["entropy_adv", "top_entropy", "steer"]
    assert config.trainer.experiment_name == "entropy_adv+top_entropy+steer" and config.data.seed == 3


@pytest.mark.parametrize("name", VERL_ONLY)
@pytest.mark.parametrize("hardware", ["embedded_cpu", "cluster_gpu"])
def test_verls_own_methods_compose_on_both_hardware_groups(name, hardware, run_config):
    config = run_config(f"method={name}", f"hardware={hardware}")
    parsed = validate(config)
    assert not parsed.methods and config.trainer.experiment_name == name


@pytest.mark.parametrize("name", group_options("experiment"))
@pytest.mark.parametrize("hardware", ["embedded_cpu", "cluster_gpu"])
def test_experiments_compose_and_say_what_they_were_tuned_on(name, hardware, run_config):
    config = run_config(f"experiment={name}", f"hardware={hardware}")
    parsed = validate(config)
    assert parsed.tuned_on == parsed.task.data_source and config.trainer.experiment_name == name
    assert "tuned" in open(f"{CONFIG_DIR}/experiment/{name}.yaml").read().lower()


def test_the_embedded_entropic_experiment_overrides_the_papers_values(run_config):
    paper, tuned = run_config("method=entropic"), run_config("experiment=embedded_entropic")
    assert (
        paper.entropy_verl.controllers.pi.target_entropy == 0.1
        and paper.entropy_verl.methods.entropic.prob_threshold == 0.95
    )
    assert (
        tuned.entropy_verl.controllers.pi.target_entropy == 0.45
        and tuned.entropy_verl.methods.entropic.prob_threshold == 0.5
    )


def test_method_files_carry_nothing_task_specific(run_config):
    """A method file may set verl's algorithm/actor keys and its own entropy_verl entries, never the task's data,
    reward, model or answer extractors."""
    for name in group_options("method"):
        text = OmegaConf.load(f"{METHOD_DIR}/{name}.yaml")
        assert set(text) <= {"algorithm", "actor_rollout_ref", "entropy_verl"}, name
        assert set(text.get("entropy_verl", {})) <= {"methods", "controllers"}, name
        assert set(text.get("actor_rollout_ref", {})) <= {"actor"}, name


@pytest.mark.parametrize("task", ["gsm8k", "custom"])
def test_real_tasks_on_the_cluster(task, run_config, user_run):
    """A real task on GPU nodes: the user's model and data (made here), verl's scorer or the user's."""
    if task == "custom":
        files = user_run(
            "mine",
            reward="def score(data_source, solution_str, ground_truth, extra_info=None):\n"
            "    return float(solution_str.strip() == ground_truth)\n",
        )
        files.append("entropy_verl.task.data_source=mine")
    else:
        files = user_run()
    config = run_config("hardware=cluster_gpu", f"task={task}", "method=clip_b", *files)
    parsed = validate(config)
    assert config.actor_rollout_ref.rollout.name == "vllm" and config.data.max_response_length == 8192
    assert parsed.task.scorer == ("verl" if task == "gsm8k" else "custom")


def test_the_cluster_base_bounds_memory_and_checkpoints(run_config):
    """The values docs/cluster.md's memory budget rests on (a 7B model on 8 x 80 GB; every method's total:
    tests/tools/test_memory_budget.py)."""
    config = run_config("hardware=cluster_gpu")
    actor, ref, rollout = (config.actor_rollout_ref[k] for k in ("actor", "ref", "rollout"))
    assert actor.entropy_from_logits_with_chunking and not actor.entropy_checkpointing  # checkpointing: no lower peak
    assert actor.fsdp_config.entropy_from_logits_with_chunking  # verl's engine reads it from here
    assert ref.entropy_from_logits_with_chunking
    assert actor.ppo_max_token_len_per_gpu == 12288  # adaptive_entropy's entropy gradient: 2 x 12,288 x V x 4 B
    assert ref.log_prob_max_token_len_per_gpu == 24576  # no gradient
    assert rollout.log_prob_max_token_len_per_gpu == 24576 and rollout.gpu_memory_utilization == 0.7
    assert config.trainer.save_freq > 0 and config.trainer.max_actor_ckpt_to_keep == 2
    # vLLM reserves for max_model_len (verl's null: the model's max_position_embeddings): exactly prompt + response
    assert rollout.max_model_len == config.data.max_prompt_length + config.data.max_response_length
    assert rollout.val_kwargs.n >= 8  # validation gives pass@1..8
