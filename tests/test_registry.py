"""The contract every registered method, estimator and controller keeps, checked for each one the registry holds
(a new method is covered the moment it is registered):

- a ``method/*.yaml`` selects it, its own file with the paper's values equal to its config dataclass's defaults,
  every config field has a one-line docstring, and validation accepts that file on the embedded default and under
  both hardware groups;
- a method's docstring (and its driver-side statistics' or selection's) names every ``ctx.<field>`` it reads;
- run the way the actor loss (or verl's advantage step) runs it, its output has the batch's shape, padding never
  counts (garbage at padded positions changes nothing), its inputs are not modified, and every metric is a finite
  number under its own name;
- a controller returns exactly the outputs it declares, its state is JSON, and some method reads each output.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import re
import textwrap

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from entropy_verl import registry
from entropy_verl.config import field_docs, load_registry, settable_fields
from entropy_verl.main import group_options
from entropy_verl.validation import validate

load_registry()
SPECS = registry.specs()
NAMES = [spec.name for spec in SPECS]


def at_paper_temperature(config):
    """``config`` sampling at the temperature its controllers' targets were given at (method files carry the papers'
    values; start-up refuses a target at another temperature)."""
    for controller in config.entropy_verl.controllers.values():
        if controller.get("target_temperature") is not None:
            config.actor_rollout_ref.rollout.temperature = controller.target_temperature
    return config


@pytest.fixture(scope="module")
def selecting_files():
    from entropy_verl.main import compose_run

    files = {}
    for option in group_options("method"):
        config = at_paper_temperature(compose_run([f"method={option}"]))
        for spec in SPECS:
            if OmegaConf.select(config, spec.key, default="absent") != "absent":
                files.setdefault(spec.name, []).append((option, config))
    return files


def test_the_registry_holds_the_zoo():
    expected = {
        "top_entropy",
        "entropy_adv",
        "pos_adv_reweight",
        "clip_b",
        "clip_v",
        "steer",
        "entropic",
        "adaptive_entropy_bonus",
        "clip_cov_global",
        "kl_cov_global",
        "sent",
        "w_reinforce",
        "psr",
        "nsr",
        "unlikeliness",
        "seed_grpo",
        "gdpo_v1",
        "pi",
        "adaptive_entropy",
        "lambda_schedule",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_fields_have_docstrings(name):
    spec = registry.REGISTRY[name]
    missing = set(settable_fields(spec.config_cls)) - set(field_docs(spec.config_cls))
    assert not missing, f"{spec.config_cls.__name__}: fields without a docstring: {sorted(missing)}"


def ctx_reads(fn) -> set[str]:
    """The ``ctx.<field>`` attributes ``fn`` reads in its own body (fields read inside the helpers it calls are not
    seen; its docstring names those too)."""
    (node,) = ast.parse(textwrap.dedent(inspect.getsource(fn))).body
    assert node.args.args[0].arg == "ctx", f"{fn.__qualname__}: its first argument is not named ctx"
    return {
        a.attr
        for a in ast.walk(node)
        if isinstance(a, ast.Attribute)
        and isinstance(a.value, ast.Name)
        and a.value.id == "ctx"
        and isinstance(a.ctx, ast.Load)
    }


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.kind in (*registry.LOSS_KINDS, "estimator")])
def test_docstrings_name_the_context_fields_read(name):
    spec = registry.REGISTRY[name]
    for fn in filter(None, (spec.impl, spec.step_stats, spec.step_selection)):
        doc = inspect.getdoc(fn) or ""
        assert "Reads: " in doc, f"{fn.__qualname__}: no 'Reads: ``ctx.<field>``, ...' line in its docstring"
        missing = sorted(field for field in ctx_reads(fn) if not re.search(rf"\bctx\.{field}\b", doc))
        assert not missing, f"{fn.__qualname__} reads {['ctx.' + f for f in missing]}, its docstring does not name them"


@pytest.mark.parametrize("name", NAMES)
def test_a_method_file_selects_it_with_the_papers_values(name, selecting_files):
    spec = registry.REGISTRY[name]
    assert name in selecting_files, f"no trainer_configs/method/*.yaml sets {spec.key}"
    own = [(option, config) for option, config in selecting_files[name] if option == name]
    for option, config in own or selecting_files[name]:  # its own file, else every file that selects it
        raw = OmegaConf.to_container(OmegaConf.select(config, spec.key), resolve=False) or {}
        defaults = spec.config_cls.__dataclass_fields__
        for field, value in raw.items():
            if isinstance(value, str) and value.startswith("${"):
                continue  # read from the task (gdpo's reward components)
            default = defaults[field].default
            assert value == default, (
                f"method/{option}.yaml sets {spec.key}.{field}={value!r}, the dataclass default is {default!r}"
            )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hardware", ["embedded_cpu", "cluster_gpu"])
def test_validation_accepts_its_method_file_on_both_hardware_groups(name, hardware, selecting_files, run_config):
    option, config = selecting_files[name][0]  # composed on the default hardware, embedded_cpu
    if hardware != "embedded_cpu":
        config = at_paper_temperature(run_config(f"method={option}", f"hardware={hardware}"))
    parsed = validate(config)
    entries = {s.name: cfg for s, cfg in [*parsed.methods, *parsed.controllers]}
    assert name in entries and type(entries[name]) is registry.REGISTRY[name].config_cls
    assert config.actor_rollout_ref.rollout.name == ("hf" if hardware == "embedded_cpu" else "vllm")


# ---- behaviour on a padded batch ------------------------------------------------------------------------------------


def padded_batch(padding_value: float, seed: int = 0):
    """Three responses of lengths 5, 3, 1 (T = 5) with realistic values at valid positions and ``padding_value``
    wherever the mask is 0."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    pad = lambda t: t.masked_fill(~mask, padding_value)  # noqa: E731
    old_log_prob = pad(-torch.rand(3, 5, generator=gen) * 2 - 0.01)
    advantages = pad(torch.tensor([[1.0], [-0.5], [-1.5]]).expand(3, 5).clone())
    p = torch.rand(3, 5, 6, generator=gen).softmax(-1)
    return {
        "mask": mask,
        "old_log_prob": old_log_prob,
        "log_prob": pad(old_log_prob + 0.05 * torch.randn(3, 5, generator=gen)),
        "advantages": advantages,
        "old_entropy": pad(-(p * p.log()).sum(-1)),
        "entropy": pad(-(p * p.log()).sum(-1) * 1.1),
        "sum_p2": pad((p * p).sum(-1)),
        "sum_p2_logp": pad((p * p * p.log()).sum(-1)),
    }


def run_loss_method(spec, cfg, padding_value):
    """The method as the trainer and the actor loss run it: the driver's whole-step values first, then the worker."""
    from entropy_verl.losses import LossContext, run_method

    b = padded_batch(padding_value)
    whole = LossContext.of_sampling_policy(
        b["old_log_prob"], b["advantages"], b["mask"], b["old_entropy"], b["sum_p2"], b["sum_p2_logp"]
    )
    step_stats = {spec.name: spec.step_stats(whole, cfg)} if spec.step_stats else {}
    selections = (
        {spec.name: spec.step_selection(whole, cfg, torch.Generator().manual_seed(0))} if spec.step_selection else {}
    )
    coefficients = {key: 0.3 for key in spec.reads_of(cfg)}
    ctx = LossContext(
        log_prob=b["log_prob"].clone().requires_grad_(),
        old_log_prob=b["old_log_prob"],
        advantages=b["advantages"],
        response_mask=b["mask"],
        entropy=b["entropy"].clone().requires_grad_(),
        old_entropy=b["old_entropy"],
        coefficients=coefficients,
        step_stats=step_stats,
        selections=selections,
        old_sum_p2=b["sum_p2"],
        old_sum_p2_logp=b["sum_p2_logp"],
    )
    inputs = {k: v.clone() for k, v in b.items()}
    out, metrics = run_method(ctx, spec, cfg)
    for key in ("old_log_prob", "advantages", "old_entropy"):
        assert torch.equal(b[key], inputs[key]), f"{spec.name} modified {key} in place"
    return out, metrics, b["mask"]


def method_config(spec, selecting_files):
    """Its config as its method file builds it (the paper's values), from the composed run config."""
    from entropy_verl.config import build_entry

    _, config = selecting_files[spec.name][0]
    return build_entry(spec.block, spec.name, OmegaConf.select(config, spec.key))[1]


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.kind in registry.LOSS_KINDS])
def test_loss_method_output_shape_padding_and_metrics(name, selecting_files):
    spec = registry.REGISTRY[name]
    cfg = method_config(spec, selecting_files)
    out, metrics, mask = run_loss_method(spec, cfg, padding_value=0.0)
    garbage_out, garbage_metrics, _ = run_loss_method(spec, cfg, padding_value=37.0)
    if spec.kind == "term":
        assert out.dim() == 0 and torch.isfinite(out)
        assert out.item() == pytest.approx(garbage_out.item(), rel=1e-6, abs=1e-9)
    else:
        assert out.shape == mask.shape and torch.isfinite(out[mask]).all()
        assert torch.allclose(out[mask], garbage_out[mask])
    assert metrics and all(k.startswith(f"{name}/") for k in metrics), metrics
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics
    assert metrics == pytest.approx(garbage_metrics)


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.kind == "estimator"])
def test_estimator_output_shape_padding_and_metrics(name, selecting_files):
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    from entropy_verl.advantages import estimator_inputs

    spec = registry.REGISTRY[name]
    cfg = method_config(spec, selecting_files)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.float32)
    rewards = torch.zeros(4, 4)
    rewards[torch.arange(4), mask.sum(-1).long() - 1] = torch.tensor([1.0, 0.0, 1.0, 0.0])
    inputs = {
        registry.SEQUENCE_MEAN_OLD_LOG_PROB: torch.tensor([-0.5, -1.0, -2.0, -0.1]),
        registry.FINAL_ANSWERS: ["3", "4", "3", None],
        registry.REWARD_COMPONENTS: {"accuracy_reward": [1.0, 0.0, 1.0, 0.0], "format_reward": [1.0, 1.0, 0.0, 0.0]},
    }
    with estimator_inputs({name: cfg}, **{k: inputs[k] for k in spec.needs}) as metrics:
        adv, _ = get_adv_estimator_fn(name)(
            token_level_rewards=rewards,
            response_mask=mask,
            index=np.array(["g"] * 4, dtype=object),
            config=OmegaConf.create({"norm_adv_by_std_in_grpo": True}),
        )
    assert adv.shape == mask.shape and torch.isfinite(adv).all() and torch.all(adv[mask == 0] == 0)
    assert metrics and all(k.startswith(f"{name}/") and math.isfinite(v) for k, v in metrics.items()), metrics


@pytest.mark.parametrize("name", [s.name for s in SPECS if s.kind == "controller"])
def test_controller_outputs_state_and_readers(name, selecting_files):
    spec = registry.REGISTRY[name]
    controller = spec.impl(method_config(spec, selecting_files))
    for entropy in (0.5, 0.05, 0.3):
        out = controller.update(entropy)
        assert set(out) == set(spec.outputs) and all(math.isfinite(v) for v in out.values())
    json.dumps(controller.state_dict())
    assert controller.name == name
    for option, config in selecting_files[name]:  # each file that selects it pairs it with a method reading its outputs
        parsed = validate(config)
        read = {key for s, cfg in parsed.methods for key in s.reads_of(cfg)}
        assert set(spec.outputs) <= read, f"method/{option}.yaml: no method reads {name}'s outputs {spec.outputs}"


def test_controller_outputs_are_declared_once_and_read_by_attribute():
    from dataclasses import dataclass

    from entropy_verl.controllers import PIController

    load_registry()
    assert PIController.outputs == registry.get("pi").outputs == ("alpha",) and PIController.outputs.alpha == "alpha"
    with pytest.raises(AttributeError, match="no controller output 'alfa'; did you mean 'alpha'"):
        PIController.outputs.alfa  # noqa: B018

    @dataclass
    class Mutable:
        x: float = 1.0
        """A setting."""

    with pytest.raises(TypeError, match="must be a frozen dataclass"):
        registry.register("mutable_example", kind="weight", config=Mutable)
    with pytest.raises(ValueError, match="only controllers declare outputs"):
        registry.register("weight_example", kind="weight", config=dataclass(frozen=True)(Mutable), outputs=("y",))
    assert "mutable_example" not in registry.REGISTRY and "weight_example" not in registry.REGISTRY
