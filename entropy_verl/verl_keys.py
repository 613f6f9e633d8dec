"""verl's own keys a run depends on, checked in the driver before Ray starts; every error is a ConfigError naming the
key. ``entropy_verl.validation.validate`` calls these.

1. ``check_verl_sections``: verl's typed sections, built as verl's trainer and workers build them
   (``verl.utils.config.omega_conf_to_dataclass`` on the actor, the reference policy, the rollout, the critic, the
   algorithm), on a copy of the config in which the embedded default's paths are placeholders (nothing is built or
   loaded). First every value is checked against its dataclass field's type (a string is not a number, a float not
   an integer, a number not a bool, NaN and inf are not numbers), then whatever the dataclass refuses
   (``__post_init__``, verl's ``validate``) is refused with the section's key.
2. ``KEYS``: the numeric keys verl reads without checking them, each with the range a run needs and why; the values
   verl documents as "off" stay legal (``trainer.save_freq``/``test_freq`` <= 0, ``optim.lr_warmup_steps`` <= 0,
   ``data.train_max_samples`` -1, a null micro-batch size, ``top_k`` -1/0, ...).
3. What verl reads by name, looked up where verl looks it up (policy losses, KL estimators), and settings that hold
   only together (a token budget that fits one sequence, sampling at temperature 0).
4. ``check_model``: a local Hugging Face model's config and tokenizer (verl's ``HFModelConfig``, no weights), the
   sequence length against its context, and entropy targets against ln(vocabulary size), the most entropy any
   policy over that vocabulary has; ``check_reward_file``: a custom reward function's file exists and defines the
   function named (read, not run).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import traceback
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from entropy_verl.config import ConfigError, EntropyVerlConfig, check_value

EMBEDDED_PLACEHOLDER = "<the embedded default, built after the checks>"
_ABSENT = object()


def _select(config: DictConfig, key: str, default=None):
    return OmegaConf.select(config, key, default=default, throw_on_missing=False)


def _needs(what: str) -> Callable[[DictConfig], bool]:
    """verl's own test of whether a run builds the critic / the reference policy."""

    def test(config: DictConfig) -> bool:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy

        with warnings.catch_warnings():  # need_critic warns that the critic is off for a non-gae estimator
            warnings.simplefilter("ignore")
            return bool(need_critic(config) if what == "critic" else need_reference_policy(config))

    return test


def _equals(key: str, *values) -> Callable[[DictConfig], bool]:
    return lambda config: _select(config, key) in values


# ---- the numeric keys verl reads unchecked (KEYS) --------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One numeric key of verl's: its type (``int`` or ``float``), the range a run needs (``"> 0"``, ``">= 1"``,
    ``"[0, 1]"``, ``"(0, 1]"``, ``"any"``), and why; ``null``: verl reads null as unset; ``when``: checked only for
    runs that read the key."""

    key: str
    kind: type
    range: str
    why: str
    null: bool = False
    when: Callable[[DictConfig], bool] | None = None

    def admits(self, value) -> bool:
        if self.range == "any":
            return True
        if match := re.fullmatch(r"(>=|>)\s*(-?[\d.]+)", self.range):
            bound = float(match[2])
            return value >= bound if match[1] == ">=" else value > bound
        match = re.fullmatch(r"([\[(])\s*(-?[\d.]+),\s*(-?[\d.]+)\s*([\])])", self.range)
        if match is None:
            raise ValueError(f"{self.key}: unreadable range {self.range!r}")
        low, high = float(match[2]), float(match[3])
        above = value >= low if match[1] == "[" else value > low
        below = value <= high if match[4] == "]" else value < high
        return above and below


def _fsdp_actor(config: DictConfig) -> bool:
    return str(_select(config, "actor_rollout_ref.actor.strategy", "")).startswith("fsdp")


CRITIC, REF = _needs("critic"), _needs("reference policy")
ACTOR, ROLLOUT, OPTIM = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.actor.optim"

KEYS: tuple[Key, ...] = (
    # data and run length
    Key("data.max_prompt_length", int, ">= 1", "prompts are padded and truncated to it: 0 leaves no room for one"),
    Key("data.max_response_length", int, ">= 1", "the most tokens a response has: 0 generates nothing to learn from"),
    Key("data.train_max_samples", int, "any", "-1 (any value <= 0): the whole training file"),
    Key("data.val_max_samples", int, "any", "-1 (any value <= 0): the whole validation file"),
    Key("data.dataloader_num_workers", int, ">= 0", "torch's DataLoader refuses a negative count, inside Ray"),
    Key("trainer.total_epochs", int, ">= 1", "verl's loop runs while epoch < total_epochs: 0 trains nothing, exit 0"),
    Key("trainer.save_freq", int, "any", "steps between checkpoints; <= 0 (verl's -1): none"),
    Key("trainer.test_freq", int, "any", "steps between validations; <= 0 (verl's -1): none after the start"),
    Key("trainer.max_actor_ckpt_to_keep", int, "any", "null or <= 0: keep every checkpoint", null=True),
    Key("trainer.log_val_generations", int, ">= 0", "validation generations logged per validation"),
    # the actor's optimizer
    Key(
        f"{OPTIM}.lr",
        float,
        "> 0",
        "the step size: 0 trains nothing (trainer.val_only=true validates without training), below 0 climbs the loss",
    ),
    Key(f"{OPTIM}.weight_decay", float, ">= 0", "AdamW's decoupled decay: below 0 grows every weight each step"),
    Key(
        f"{OPTIM}.lr_warmup_steps_ratio",
        float,
        "[0, 1]",
        "the share of the run spent warming up (when lr_warmup_steps <= 0): above 1 the rate never reaches optim.lr",
    ),
    Key(
        f"{OPTIM}.lr_warmup_steps",
        int,
        "any",
        "<= 0 (verl's -1): lr_warmup_steps_ratio decides; null, documented "
        "as the same, fails in verl 0.9.1's FSDP engine (it compares the value with 0): use -1",
        when=_fsdp_actor,
    ),
    Key(
        f"{OPTIM}.min_lr_ratio",
        float,
        "[0, 1]",
        "the cosine schedule's floor as a share of optim.lr (verl asserts it inside a worker)",
        null=True,
    ),
    Key(f"{OPTIM}.clip_grad", float, "> 0", "the gradient-norm cap: 0 zeroes every update, below 0 reverses it"),
    Key(f"{OPTIM}.betas", float, "[0, 1)", "Adam's moment decays: at 1 or above the moments never forget, or diverge"),
    # the actor's loss
    Key(f"{ACTOR}.clip_ratio", float, ">= 0", "PPO's clip range around a ratio of 1"),
    Key(
        f"{ACTOR}.clip_ratio_low",
        float,
        "[0, 1]",
        "the ratio is clipped below at 1 - clip_ratio_low: below 0 the "
        "clip range no longer holds 1, where every step starts",
    ),
    Key(
        f"{ACTOR}.clip_ratio_high",
        float,
        ">= 0",
        "the ratio is clipped above at 1 + clip_ratio_high: below 0 the "
        "clip range no longer holds 1, where every step starts",
    ),
    Key(
        f"{ACTOR}.clip_ratio_c",
        float,
        "> 1",
        "dual-clip's bound on the ratio for negative advantages: verl "
        "asserts > 1 in the loss, inside a worker at the first step",
    ),
    Key(f"{ACTOR}.kl_loss_coef", float, ">= 0", "the KL-to-reference loss weight: below 0 pays the policy to drift"),
    Key(f"{ACTOR}.ppo_epochs", int, ">= 1", "passes over each step's batch: 0 trains nothing"),
    Key(f"{ACTOR}.ppo_mini_batch_size", int, ">= 1", "prompts per optimizer step: verl divides by it"),
    Key(f"{ACTOR}.ppo_micro_batch_size_per_gpu", int, ">= 1", "samples per forward pass: verl splits by it", null=True),
    Key(f"{ACTOR}.ppo_max_token_len_per_gpu", int, ">= 1", "tokens per forward pass under dynamic batch sizes"),
    Key(
        f"{ACTOR}.policy_loss.clip_cov_ratio",
        float,
        "(0, 1]",
        "the share of tokens Clip-Cov clips (verl asserts > 0 in the loss)",
        when=_equals(f"{ACTOR}.policy_loss.loss_mode", "clip_cov"),
    ),
    Key(
        f"{ACTOR}.policy_loss.kl_cov_ratio",
        float,
        "(0, 1]",
        "the share of tokens KL-Cov penalises (verl asserts > 0 in the loss)",
        when=_equals(f"{ACTOR}.policy_loss.loss_mode", "kl_cov"),
    ),
    Key(
        f"{ACTOR}.policy_loss.ppo_kl_coef",
        float,
        ">= 0",
        "KL-Cov's penalty weight: below 0 rewards the tokens it selects for moving",
        when=_equals(f"{ACTOR}.policy_loss.loss_mode", "kl_cov"),
    ),
    # the reference policy's log-probs
    Key(
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu",
        int,
        ">= 1",
        "samples per forward pass",
        null=True,
        when=REF,
    ),
    Key("actor_rollout_ref.ref.log_prob_max_token_len_per_gpu", int, ">= 1", "tokens per forward pass", when=REF),
    # the rollout
    Key(f"{ROLLOUT}.n", int, ">= 1", "responses per prompt (GRPO's group): 0 generates nothing"),
    Key(
        f"{ROLLOUT}.temperature",
        float,
        "> 0",
        "0 samples greedily: a prompt's responses are identical, so their "
        "group advantages are 0, and entropy has no meaning",
    ),
    Key(f"{ROLLOUT}.top_p", float, "(0, 1]", "nucleus sampling's probability mass (1: off)"),
    Key(f"{ROLLOUT}.top_k", int, ">= -1", "the top-k tokens sampled from; -1 (vLLM) or 0 (hf): off"),
    Key(
        f"{ROLLOUT}.gpu_memory_utilization",
        float,
        "(0, 1]",
        "the share of each GPU's memory the inference engine takes",
    ),
    Key(f"{ROLLOUT}.prompt_length", int, ">= 1", "verl's default is data.max_prompt_length"),
    Key(f"{ROLLOUT}.response_length", int, ">= 1", "verl's default is data.max_response_length"),
    Key(
        f"{ROLLOUT}.max_model_len", int, ">= 1", "the inference engine's sequence length (null: the model's)", null=True
    ),
    Key(f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu", int, ">= 1", "samples per forward pass", null=True),
    Key(f"{ROLLOUT}.log_prob_max_token_len_per_gpu", int, ">= 1", "tokens per forward pass"),
    Key(f"{ROLLOUT}.val_kwargs.n", int, ">= 1", "responses per validation prompt (pass@k's k)"),
    Key(f"{ROLLOUT}.val_kwargs.temperature", float, ">= 0", "0: greedy validation (verl's default)"),
    Key(f"{ROLLOUT}.val_kwargs.top_p", float, "(0, 1]", "nucleus sampling's probability mass (1: off)"),
    # advantages and the in-reward KL
    Key("algorithm.gamma", float, "[0, 1]", "the discount of GAE and REINFORCE++ returns"),
    Key("algorithm.lam", float, "[0, 1]", "GAE's lambda"),
    Key(
        "algorithm.kl_ctrl.kl_coef",
        float,
        ">= 0",
        "the in-reward KL weight: below 0 pays the policy to drift",
        when=_equals("algorithm.use_kl_in_reward", True),
    ),
    Key(
        "algorithm.kl_ctrl.target_kl",
        float,
        "> 0",
        "the adaptive controller's KL target",
        when=lambda c: _select(c, "algorithm.use_kl_in_reward") and _select(c, "algorithm.kl_ctrl.type") == "adaptive",
    ),
    Key(
        "algorithm.kl_ctrl.horizon",
        int,
        ">= 1",
        "the adaptive controller divides by it",
        when=lambda c: _select(c, "algorithm.use_kl_in_reward") and _select(c, "algorithm.kl_ctrl.type") == "adaptive",
    ),
    # the critic, when it trains (gae)
    Key("critic.optim.lr", float, "> 0", "the critic's step size", when=CRITIC),
    Key("critic.ppo_epochs", int, ">= 1", "the critic's passes over each batch", when=CRITIC),
    Key("critic.ppo_mini_batch_size", int, ">= 1", "prompts per critic optimizer step", when=CRITIC),
    Key("critic.ppo_max_token_len_per_gpu", int, ">= 1", "tokens per critic forward pass", when=CRITIC),
    Key("critic.cliprange_value", float, "> 0", "the value clip range", when=CRITIC),
)


def _number(value, kind: type, key: str, why: str):
    expected = int if kind is int else float
    try:
        return check_value(value, expected, key)
    except ConfigError as exc:
        raise ConfigError(key, f"{str(exc).split(': ', 1)[1]}; {why}") from None


def check_keys(config: DictConfig, keys: tuple[Key, ...] = KEYS) -> None:
    """Each key of ``keys`` the config holds (and the run reads) has the type and range it declares."""
    for spec in keys:
        value = _select(config, spec.key, _ABSENT)
        if value is _ABSENT or (spec.when is not None and not spec.when(config)):
            continue
        if value is None:
            if spec.null:
                continue
            raise ConfigError(spec.key, f"is null; expected {spec.kind.__name__} {spec.range}: {spec.why}")
        values = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
        for item in values:
            number = _number(item, spec.kind, spec.key, spec.why)
            if not spec.admits(number):
                shown = value if isinstance(value, (int, float)) else OmegaConf.to_container(value)
                raise ConfigError(spec.key, f"is {shown!r}; expected {spec.range}: {spec.why}")


# ---- verl's typed sections -------------------------------------------------------------------------------------------


def _offline_copy(config: DictConfig) -> DictConfig:
    """A copy of ``config`` whose ``${embedded:...}`` values are placeholders, so reading it builds nothing."""
    config = copy.deepcopy(config)

    def walk(node) -> None:
        for key in list(node.keys()) if isinstance(node, DictConfig) else range(len(node)):
            child = node._get_node(key)  # noqa: SLF001 - the unresolved node
            if child is None:
                continue
            if child._is_interpolation():  # noqa: SLF001
                if "${embedded:" in str(child._value()):  # noqa: SLF001
                    node[key] = EMBEDDED_PLACEHOLDER
            elif isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_missing():  # noqa: SLF001
                walk(child)

    with open_dict(config):
        walk(config)
    return config


def _hints(cls: type) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a forward reference verl does not resolve: no types to check
        return {}


def _checkable(hint) -> bool:
    if hint in (bool, int, float, str):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(a is type(None) or _checkable(a) for a in args)
    return origin is list and len(args) == 1 and _checkable(args[0])


def _target_class(node: DictConfig):
    import hydra.utils

    target = node.get("_target_") if isinstance(node, DictConfig) else None
    return hydra.utils.get_class(target) if target else None


def check_types(node: DictConfig, cls: type, key: str) -> None:
    """Every value under ``node`` has the type its field of the dataclass ``cls`` declares (nested sections by their
    own ``_target_`` or field type)."""
    hints = _hints(cls)
    for name in node.keys():
        if name == "_target_" or name not in hints or OmegaConf.is_missing(node, name):
            continue
        value, hint, child_key = node[name], hints[name], f"{key}.{name}"
        if isinstance(value, DictConfig):
            child_cls = _target_class(value) or (hint if dataclasses.is_dataclass(hint) else None)
            if child_cls is not None:
                check_types(value, child_cls, child_key)
            continue
        # verl's YAML writes null for "unset" even where the field is not Optional: null passes
        if value is None or not _checkable(hint):
            continue
        if isinstance(value, ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        try:
            check_value(value, hint, child_key)
        except ConfigError as exc:
            raise ConfigError(exc.key, f"{str(exc).split(': ', 1)[1]}, for verl's {cls.__name__}.{name}") from None


def _refusal(exc: BaseException) -> str:
    """What a dataclass's own check said, or the failing line of a bare ``assert``."""
    cause = exc.__cause__ or exc
    text = str(cause).strip()
    if not text or text == "None":
        frames = traceback.extract_tb(cause.__traceback__)
        text = frames[-1].line if frames else type(cause).__name__
    return f"{type(cause).__name__}: {text}" if isinstance(cause, AssertionError) else text


def build_section(config: DictConfig, key: str):
    """``omega_conf_to_dataclass`` on the section at ``key``, as verl calls it; what verl refuses names the section
    (hydra's ``full_key``: the innermost section that refused)."""
    from verl.utils.config import omega_conf_to_dataclass

    node = OmegaConf.select(config, key)
    cls = _target_class(node)
    try:
        with warnings.catch_warnings():  # deprecation notices verl prints again when it builds the section itself
            warnings.simplefilter("ignore")
            return omega_conf_to_dataclass(node)
    except Exception as exc:  # noqa: BLE001 - any refusal: ValueError, AssertionError, TypeError, hydra's wrapper
        full_key = re.search(r"full_key: (\S+)", str(exc))
        where = full_key[1] if full_key else key
        target = re.search(r"call to target '([\w.]+)'", str(exc))  # the innermost class that refused
        name = target[1].rpartition(".")[2] if target else cls.__name__ if cls is not None else "config"
        raise ConfigError(where, f"verl's {name} refuses it: {_refusal(exc)}") from None


def _ref_as_verl_builds_it(config: DictConfig) -> None:
    """verl's worker builds the reference policy's ActorConfig from the ref section, renaming its log_prob_* keys
    (``engine_workers.ActorRolloutRefWorker.init_model``)."""
    ref = config.actor_rollout_ref.ref
    with open_dict(ref):
        ref.ppo_mini_batch_size = config.actor_rollout_ref.actor.ppo_mini_batch_size
        ref.ppo_micro_batch_size = ref.pop("log_prob_micro_batch_size", None)
        ref.ppo_micro_batch_size_per_gpu = ref.pop("log_prob_micro_batch_size_per_gpu", None)
        ref.use_dynamic_bsz = ref.pop("log_prob_use_dynamic_bsz", False)
        ref.ppo_max_token_len_per_gpu = ref.pop("log_prob_max_token_len_per_gpu", None)


# (section, built when, typed only): the sections verl's trainer and workers convert. verl 0.9.1 never builds its
# RewardConfig (its RewardManagerConfig.__post_init__ calls a base method that does not exist): types only.
SECTIONS: tuple[tuple[str, Callable[[DictConfig], bool] | None, bool], ...] = (
    ("actor_rollout_ref.actor", None, False),
    ("actor_rollout_ref.ref", REF, False),
    ("actor_rollout_ref.rollout", None, False),
    ("critic", CRITIC, False),
    ("algorithm", None, False),
    ("reward", None, True),
)


def check_verl_sections(config: DictConfig) -> None:
    """Types of verl's typed sections, the declared ranges (``KEYS``), then verl's own dataclasses built from them."""
    offline = _offline_copy(config)
    built = [(key, typed_only) for key, when, typed_only in SECTIONS if when is None or when(offline)]
    for key, _ in built:
        node = OmegaConf.select(offline, key, default=None)
        if isinstance(node, DictConfig) and (cls := _target_class(node)) is not None:
            check_types(node, cls, key)
    check_keys(offline)
    check_named_functions(offline)
    check_together(offline)
    n_gpus = int(offline.trainer.nnodes) * int(offline.trainer.n_gpus_per_node)
    batch = int(offline.data.train_batch_size)
    for key, typed_only in built:
        if typed_only:
            continue
        if key == "actor_rollout_ref.ref":
            _ref_as_verl_builds_it(offline)
        if key == "critic":  # its model is a Hugging Face model config, which loads the model's files: not here
            with open_dict(offline.critic):
                offline.critic.model = None
        section = build_section(offline, key)
        if key in ("actor_rollout_ref.actor", "critic"):  # verl's validate_config runs these before workers start
            try:
                if key == "critic":
                    section.validate(n_gpus, batch)
                else:
                    section.validate(n_gpus, batch, offline.actor_rollout_ref.model)
            except (ValueError, AssertionError) as exc:
                raise ConfigError(key, f"verl's {type(section).__name__} refuses it: {_refusal(exc)}") from None


# ---- names verl looks up, and settings that hold only together -------------------------------------------------------


def check_named_functions(config: DictConfig) -> None:
    """The policy loss and the KL estimators the run uses are ones verl has (entropy_verl's registered too)."""
    import torch
    from verl.trainer.ppo.core_algos import get_policy_loss_fn, kl_penalty

    from entropy_verl.config import load_registry

    load_registry()  # entropy_verl's own policy losses register on import
    key = f"{ACTOR}.policy_loss.loss_mode"
    try:
        get_policy_loss_fn(_select(config, key, "vanilla"))
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    estimators = [(f"{ACTOR}.kl_loss_type", f"{ACTOR}.use_kl_loss")]
    estimators.append(("algorithm.kl_penalty", "algorithm.use_kl_in_reward"))
    for key, used in estimators:
        name = _select(config, key)
        if not _select(config, used):
            continue
        try:
            kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), kl_penalty=str(name))
        except NotImplementedError:
            raise ConfigError(
                key,
                f"verl 0.9.1 has no KL estimator {name!r}: kl (k1), abs, mse (k2), low_var_kl (k3), each with an "
                "optional + (straight-through gradient)",
            ) from None


def check_together(config: DictConfig) -> None:
    """Settings that are each legal but fail together: a dynamic batch's token budget below one sequence (verl asserts
    it inside a worker), validation that samples at temperature 0."""
    sequence = int(config.data.max_prompt_length) + int(config.data.max_response_length)
    sp = int(_select(config, f"{ACTOR}.ulysses_sequence_parallel_size", 1) or 1)  # a sequence split over sp GPUs
    budgets = [(ACTOR, "ppo_max_token_len_per_gpu", "use_dynamic_bsz")]
    budgets.append((ROLLOUT, "log_prob_max_token_len_per_gpu", "log_prob_use_dynamic_bsz"))
    if REF(config):
        budgets.append(("actor_rollout_ref.ref", "log_prob_max_token_len_per_gpu", "log_prob_use_dynamic_bsz"))
    for section, budget_key, dynamic in budgets:
        key, budget = f"{section}.{budget_key}", _select(config, f"{section}.{budget_key}")
        if _select(config, f"{section}.{dynamic}") and budget is not None and budget * sp < sequence:
            raise ConfigError(
                key,
                f"{budget} tokens per forward pass hold no whole sequence of data.max_prompt_length + "
                f"data.max_response_length = {sequence} tokens: verl asserts it fits, inside a worker, at the first "
                "long response",
            )
    key = f"{ROLLOUT}.val_kwargs.temperature"
    if _select(config, f"{ROLLOUT}.val_kwargs.do_sample") and _select(config, key) == 0:
        raise ConfigError(
            key,
            "is 0 with val_kwargs.do_sample=true: sampling at temperature 0 is greedy (transformers refuses it); for "
            "greedy validation set val_kwargs.do_sample=false",
        )


# ---- the model and the reward function -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    vocab_size: int | None
    context: int | None  # max_position_embeddings, where no rope scaling extends it
    source: str


def model_facts(config: DictConfig, embedded: bool) -> ModelFacts | None:
    """Vocabulary size and context of the run's model: the embedded default's from its recipe, a local Hugging Face
    directory's from its config.json; None for a hub id or remote path (verl's to fetch)."""
    if embedded:
        from entropy_verl.embedded.model import ModelSpec
        from entropy_verl.embedded.tokenizer import build_vocab

        return ModelFacts(len(build_vocab()), ModelSpec().max_position_embeddings, "the embedded default's model")
    path = _select(config, "actor_rollout_ref.model.path")
    config_path = os.path.join(os.path.expanduser(str(path)), "config.json") if path else ""
    if not os.path.isfile(config_path):
        return None
    with open(config_path) as f:
        hf = json.load(f)
    text = hf.get("text_config") or {}
    vocab = hf.get("vocab_size") or text.get("vocab_size")
    context = hf.get("max_position_embeddings") or text.get("max_position_embeddings")
    if hf.get("rope_scaling") or text.get("rope_scaling"):  # scaled: the engine's own arithmetic decides
        context = None
    return ModelFacts(vocab, context, f"{config_path}")


def _embedded_build(path) -> bool:
    """``path`` is the model directory of a built embedded default (the trainer sees the interpolation resolved)."""
    if not path:
        return False
    manifest = os.path.join(os.path.dirname(os.path.abspath(os.path.expanduser(str(path)))), "manifest.json")
    try:
        with open(manifest) as f:
            return str(json.load(f).get("name", "")).startswith("embedded-")
    except (OSError, ValueError, AttributeError):
        return False


def check_model(config: DictConfig, parsed: EntropyVerlConfig, embedded: bool, in_trainer: bool = False) -> None:
    """A local model directory as verl's ``HFModelConfig`` reads it (config and tokenizer, no weights; in the trainer
    verl reads it itself next), the sequence against its context, and every entropy target within ln(vocabulary).
    ``embedded``: the model path is still the embedded default's interpolation (nothing built yet)."""
    facts = model_facts(config, embedded)
    if facts is None:
        return
    if not embedded and not in_trainer:
        build_section(_offline_copy(config), "actor_rollout_ref.model")
    sequence = int(config.data.max_prompt_length) + int(config.data.max_response_length)
    # not for the embedded default: tests/test_registry.py validates it at hardware=cluster_gpu's lengths
    is_embedded = embedded or _embedded_build(_select(config, "actor_rollout_ref.model.path"))
    if facts.context is not None and sequence > facts.context and not is_embedded:
        raise ConfigError(
            "data.max_response_length",
            f"data.max_prompt_length + data.max_response_length = {sequence} tokens, beyond the model's "
            f"max_position_embeddings {facts.context} ({facts.source}): vLLM refuses the length at start-up, and no "
            "model generates well past the positions it was trained on",
        )
    if not facts.vocab_size:
        return
    ceiling = math.log(facts.vocab_size)
    for spec, cfg in parsed.controllers:
        target = getattr(cfg, "target_entropy", None)
        if target is not None and target > ceiling:
            raise ConfigError(
                f"entropy_verl.controllers.{spec.name}.target_entropy",
                f"{target:g} nats is more than any policy over {facts.vocab_size} tokens has: the most is "
                f"ln({facts.vocab_size}) = {ceiling:.3f}, the uniform distribution ({facts.source})",
            )


def check_reward_file(config: DictConfig) -> None:
    """A custom reward function's file exists and defines the function named, read without running it (verl imports
    it in its reward workers, after start-up); hub or remote paths are verl's to fetch."""
    import ast

    path_key, name_key = "reward.custom_reward_function.path", "reward.custom_reward_function.name"
    path, name = _select(config, path_key), _select(config, name_key)
    if not path or "://" in str(path):
        return
    file = os.path.expanduser(str(path))
    if not os.path.isfile(file):
        raise ConfigError(path_key, f"{path!r} is no file (working directory: {os.getcwd()})")
    if not name:
        raise ConfigError(name_key, f"not set: the function of {path!r} that scores a response")
    try:
        tree = ast.parse(open(file).read(), filename=file)
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(path_key, f"{path!r} is not a readable Python file: {exc}") from None
    defined, star = set(), False

    def bind(statements) -> None:
        nonlocal star
        for stmt in statements:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(stmt.name)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                defined.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for alias in stmt.names:
                    star |= alias.name == "*"
                    defined.add(alias.asname or alias.name.split(".")[0])
            for block in ("body", "orelse", "finalbody", "handlers"):  # if / try / with at the top level
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    bind(getattr(stmt, block, []) or [])

    bind(tree.body)
    if name not in defined and not star:
        functions = sorted(s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)))
        raise ConfigError(name_key, f"{path!r} defines no {name!r} (its functions: {functions})")
