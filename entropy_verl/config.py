"""The ``entropy_verl`` block of a run's config, parsed in one place: ``entropy_verl.main`` (before Ray starts),
start-up validation and the trainer (inside Ray) all call ``parse``, so what is checked is what runs.

    entropy_verl:
      run_dir: ...                   # metrics.jsonl, checkpoints, Hydra's config
      existing_run: move_aside       # a fresh start where an earlier run left checkpoints/metrics (run_state.py)
      task: {data_source, scorer, answer_extractor, final_answer, reward_components}  (TaskConfig; task/<name>.yaml)
      methods: {<name>: {<field>: value}}      # registered methods (advantage shaping, token weight, loss term,
                                               # advantage estimator), each built into its config dataclass
      controllers: {<name>: {<field>: value}}  # registered driver-side controllers
                                               # (a ``Scheduled`` field also takes [[step, value], ...]: schedule.py)
      diagnostics: {enable, correct_threshold}
      tuned_on: null                 # experiments: the data_source their values were tuned on

Every level is strict: a key that nothing reads is an error naming it and the closest valid key; numbers must be
finite numbers (a bool is not a number), bools must be bools, ``Literal`` fields one of their values.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from entropy_verl import registry
from entropy_verl.registry import LOSS_KINDS, Spec, closest
from entropy_verl.schedule import Schedule, is_schedule, parse_schedule, points, schedulable_fields, values_at


class ConfigError(ValueError):
    """A configuration value entropy_verl cannot run with. The message starts with the key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


# ---- strict dataclass configs -------------------------------------------------------------------------------------


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstring under each field of a config dataclass (the string literal that follows it), its base
    classes' fields included."""
    docs = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for stmt, following in zip(body, [*body[1:], None], strict=True):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(following.value.value.split())
    return docs


def settable_fields(cls: type) -> dict[str, Any]:
    """{field name: resolved type} of the fields a config may set (``init=False`` fields are derived)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


SCALARS = {  # type -> (accepts, what it expects): a bool is not a number, a string is not a bool
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def check_value(value, expected, key: str):
    """``value`` as a ``expected`` (an int becomes a float for a float field); a ConfigError naming ``key`` if not."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return check_value(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc).split(": ", 1)[1])
        raise ConfigError(key, " or ".join(errors) + (" (or null)" if type(None) in args else ""))
    if origin is typing.Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise ConfigError(
            key,
            f"expected one of {', '.join(map(repr, args))}, got {_describe(value)}"
            f"{closest(str(value), map(str, args))}",
        )
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(key, f"expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(key, f"expected a number, got {_describe(value)}")
    if expected in SCALARS:
        accepts, what = SCALARS[expected]
        if accepts(value):
            return value
        raise ConfigError(key, f"expected {what}, got {_describe(value)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {_describe(value)}")
        return [check_value(v, args[0] if args else Any, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{key}: config fields of type {expected!r} are not supported by check_value")


def build_config(cls: type, values: Mapping | None, key: str):
    """``cls(**values)``, strictly: unknown keys, wrong types and non-finite numbers raise a ConfigError naming the
    key (``key.<field>``); the dataclass's own range checks (``__post_init__``) raise one naming ``key``."""
    values = dict(values or {})
    fields = settable_fields(cls)
    for name in values:
        if name not in fields:
            docs = field_docs(cls)
            valid = "; ".join(f"{f} ({docs[f]})" if f in docs else f for f in fields) or "none"
            raise ConfigError(f"{key}.{name}", f"no such setting{closest(name, fields)} (settings: {valid})")
    checked = {name: check_value(value, fields[name], f"{key}.{name}") for name, value in values.items()}
    try:
        return cls(**checked)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, str(exc)) from None


def as_mapping(value, key: str, what: str) -> dict:
    if value is None:
        return {}
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a mapping of {what}, got {_describe(value)}")
    return dict(value)


# ---- the entropy_verl block -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskConfig:
    """``entropy_verl.task``: what our code needs to know about the task (set by ``task/<name>.yaml``)."""

    data_source: str | list[str] | None = None
    """The ``data_source`` of the task's rows (verl picks its default scorer by it), or the list of them when the data
    mixes several (validation and entropy are then also logged per source); task functions declare theirs."""
    scorer: Literal["custom", "verl"] = "custom"
    """What scores a response: ``custom`` (reward.custom_reward_function, path and name) or ``verl`` (verl's default
    scorer for the data_source)."""
    answer_extractor: str | None = None
    """``module:function``: decoded response -> the answer as written, or None; counts distinct correct answers."""
    final_answer: str | None = None
    """``module:function``: decoded response -> its final value, or None; SEED-GRPO clusters a group's answers by it."""
    reward_components: list[str] | None = None
    """Keys of the dict the task's reward function returns besides ``score`` (GDPO normalises each); null: none."""

    @property
    def data_sources(self) -> tuple[str, ...]:
        """``data_source`` as a tuple (empty when unset)."""
        if self.data_source is None:
            return ()
        return (self.data_source,) if isinstance(self.data_source, str) else tuple(self.data_source)


TRAINER_NAME = "entropy_sync"  # trainer.v1.trainer_mode of verl's v1 trainer that runs the methods and controllers
# verl's v1 trainer mode -> the trainer.v1.trainer_mode that runs it with entropy control. entropy_verl's own trainer
# settings live in trainer.v1.entropy_sync whatever the mode; verl's in trainer.v1.<verl mode>.
TRAINER_MODES = {
    "sync": TRAINER_NAME,
    "colocate_async": "entropy_colocate_async",
    "separate_async": "entropy_separate_async",
}
TOP_LEVEL = ("run_dir", "existing_run", "task", "methods", "controllers", "diagnostics", "safety", "tuned_on")


def verl_trainer_mode(config: DictConfig) -> str | None:
    """The verl v1 trainer mode an entropy_verl ``trainer.v1.trainer_mode`` runs (``TRAINER_MODES``); None for any
    other value."""
    mode = OmegaConf.select(config, "trainer.v1.trainer_mode")
    return next((verl for verl, ours in TRAINER_MODES.items() if ours == mode), None)


def parameter_sync_step(config: DictConfig) -> int:
    """verl's local updates a step, ``trainer.v1.<verl mode>.parameter_sync_step`` (separate_async); 1 in a mode
    without the setting."""
    mode = verl_trainer_mode(config)
    return int(OmegaConf.select(config, f"trainer.v1.{mode}.parameter_sync_step", default=1) or 1) if mode else 1


@dataclass(frozen=True)
class EntropyVerlConfig:
    """The parsed ``entropy_verl`` block: (spec, config) pairs in config order, and the other sub-blocks."""

    methods: list[tuple[Spec, Any]]
    controllers: list[tuple[Spec, Any]]
    estimator: tuple[Spec, Any] | None  # ours, when algorithm.adv_estimator names one
    task: TaskConfig
    diagnostics: Any  # diagnostics.step.DiagnosticsConfig
    safety: Any  # trainer.safety.SafetyConfig
    tuned_on: str | None
    existing_run: str = "move_aside"  # run_state.EXISTING_RUN
    schedules: dict[str, dict[str, Schedule]] = dataclasses.field(default_factory=dict)  # {entry: {setting: ...}}

    @property
    def loss_methods(self) -> list[tuple[Spec, Any]]:
        """The methods the actor loss applies (advantage shapings, token weights, terms), in config order."""
        return [(spec, cfg) for spec, cfg in self.methods if spec.kind in LOSS_KINDS]

    def needs(self, need: str) -> bool:
        entries = [*self.loss_methods, *self.controllers, *([self.estimator] if self.estimator else [])]
        return any(need in spec.needs for spec, _ in entries)


def load_registry() -> None:
    """Import every module that registers entries (methods, estimators, controllers)."""
    from entropy_verl import advantages, controllers, losses  # noqa: F401  - their modules register the entries


def build_entry(block: str, name: str, values) -> tuple[Spec, Any]:
    """One entry of ``entropy_verl.<block>`` (``methods`` / ``controllers``) -> (spec, config instance); its settings
    given as schedules are built at step 0 (``build_scheduled_entry`` also returns the schedules)."""
    spec, cfg, _ = build_scheduled_entry(block, name, values)
    return spec, cfg


def build_scheduled_entry(block: str, name: str, values) -> tuple[Spec, Any, dict[str, Schedule]]:
    """One entry -> (spec, config at step 0, {setting: Schedule} for the ``Scheduled`` settings given as
    ``[[step, value], ...]``). The config is built at every point of the schedules too, so its range checks hold
    at every step (``schedule.py``)."""
    load_registry()
    kinds = ("controller",) if block == "controllers" else (*LOSS_KINDS, "estimator")
    try:
        spec = registry.get(name, kinds)
    except KeyError as exc:
        raise ConfigError(f"entropy_verl.{block}.{name}", str(exc).strip("'\"")) from None
    values = as_mapping(values, spec.key, f"{name}'s settings")
    schedules = entry_schedules(spec, values)
    if not schedules:
        return spec, build_config(spec.config_cls, values, spec.key), {}

    def at(step: int):
        return build_config(spec.config_cls, {**values, **values_at(schedules, step)}, spec.key)

    for step in points(schedules):
        try:
            at(step)
        except ConfigError as exc:
            reason = str(exc).split(": ", 1)[1]
            raise ConfigError(exc.key, f"at step {step} of its schedule ({', '.join(schedules)}): {reason}") from None
    return spec, at(0), schedules


def entry_schedules(spec: Spec, values: dict) -> dict[str, Schedule]:
    """The settings of ``values`` written as schedules, checked; a schedule given to a setting that cannot take one
    is an error naming the settings that can."""
    fields, schedulable = settable_fields(spec.config_cls), schedulable_fields(spec.config_cls)
    schedules = {}
    for name, value in values.items():
        if not is_schedule(value) or fields.get(name) not in (float, float | None):
            continue
        key = f"{spec.key}.{name}"
        if name not in schedulable:
            raise ConfigError(
                key, f"cannot be scheduled; {spec.name}'s settings that can: {', '.join(schedulable) or 'none'}"
            )
        try:
            schedules[name] = parse_schedule(value, key)
        except ValueError as exc:
            raise ConfigError(key, str(exc).split(": ", 1)[1]) from None
    return schedules


def parse(config: DictConfig) -> EntropyVerlConfig:
    """The ``entropy_verl`` block of ``config`` (a composed run config), checked and built."""
    from entropy_verl.diagnostics.step import DiagnosticsConfig

    block = as_mapping(OmegaConf.select(config, "entropy_verl", default=None), "entropy_verl", "entropy_verl settings")
    for key in block:
        if key not in TOP_LEVEL:
            raise ConfigError(
                f"entropy_verl.{key}", f"no such setting{closest(key, TOP_LEVEL)} (settings: {', '.join(TOP_LEVEL)})"
            )
    entries, schedules = {}, {}
    for name in ("methods", "controllers"):
        mapping = as_mapping(
            block.get(name),
            f"entropy_verl.{name}",
            f"{name} {{name: settings}} (e.g. select methods with method=clip_b or +entropy_verl.{name}.<name>={{}})",
        )
        built = [build_scheduled_entry(name, entry, values) for entry, values in mapping.items()]
        entries[name] = [(spec, cfg) for spec, cfg, _ in built]
        schedules.update({spec.name: scheduled for spec, _, scheduled in built if scheduled})
    adv_estimator = str(OmegaConf.select(config, "algorithm.adv_estimator", default=None))
    estimator = None
    for spec, cfg in entries["methods"]:
        if spec.kind == "estimator":
            if spec.name != adv_estimator:
                raise ConfigError(
                    spec.key,
                    f"an advantage estimator, but algorithm.adv_estimator is {adv_estimator!r}: "
                    f"set algorithm.adv_estimator={spec.name} (method={spec.name} does), or remove it",
                )
            estimator = (spec, cfg)
    if (
        estimator is None
        and adv_estimator in registry.REGISTRY
        and registry.REGISTRY[adv_estimator].kind == "estimator"
    ):
        estimator = build_entry("methods", adv_estimator, None)  # selected through verl's key alone: its defaults
    task = build_config(
        TaskConfig, as_mapping(block.get("task"), "entropy_verl.task", "task settings"), "entropy_verl.task"
    )
    diagnostics = build_config(
        DiagnosticsConfig,
        as_mapping(block.get("diagnostics"), "entropy_verl.diagnostics", "diagnostics settings"),
        "entropy_verl.diagnostics",
    )
    from entropy_verl.trainer.safety import SafetyConfig

    safety = build_config(
        SafetyConfig, as_mapping(block.get("safety"), "entropy_verl.safety", "safety settings"), "entropy_verl.safety"
    )
    tuned_on = check_value(block.get("tuned_on"), str | None, "entropy_verl.tuned_on")
    from entropy_verl.run_state import EXISTING_RUN

    existing_run = check_value(block.get("existing_run", "move_aside"), EXISTING_RUN, "entropy_verl.existing_run")
    return EntropyVerlConfig(
        methods=entries["methods"],
        controllers=entries["controllers"],
        estimator=estimator,
        task=task,
        diagnostics=diagnostics,
        safety=safety,
        tuned_on=tuned_on,
        existing_run=existing_run,
        schedules=schedules,
    )


def objective(config: DictConfig, parsed: EntropyVerlConfig) -> str:
    """The objective a run composed, in one line (the trainer prints it at start), e.g.
    ``advantages: grpo -> entropy_adv | weights: top_entropy x steer | loss: vanilla + entropic(alpha <- pi)``:
    verl's estimator then the advantage shapings in the order they apply, the token weights multiplied, verl's policy
    loss plus the terms, each with the controller outputs it reads."""
    produced = {output: spec.name for spec, _ in parsed.controllers for output in spec.outputs}

    def named(spec: Spec, cfg) -> str:
        reads = ", ".join(f"{output} <- {produced.get(output, '?')}" for output in spec.reads_of(cfg))
        return f"{spec.name}({reads})" if reads else spec.name

    def of_kind(kind: str) -> list[str]:
        return [named(spec, cfg) for spec, cfg in parsed.loss_methods if spec.kind == kind]

    estimator = OmegaConf.select(config, "algorithm.adv_estimator", default="grpo")
    loss_mode = OmegaConf.select(config, "actor_rollout_ref.actor.policy_loss.loss_mode", default="vanilla")
    advantages = " -> ".join([str(estimator), *of_kind("advantage")])
    weights = " x ".join(of_kind("weight")) or "1"
    loss = " + ".join([str(loss_mode), *of_kind("term")])
    return f"advantages: {advantages} | weights: {weights} | loss: {loss}"
