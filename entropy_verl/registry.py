"""The one registry of everything a config names under ``entropy_verl.methods`` and ``entropy_verl.controllers``.

Each entry is declared once, by the decorator on its function (or class):

    @register("clip_b", kind="weight", config=ClipBConfig, step_stats=clip_b_stats)
    def clip_b(ctx, cfg): ...

From that one line the registry knows the entry's name (its config key and its metrics prefix), its kind (how it
composes), its config dataclass, the controller outputs it reads or produces, the inputs it needs beyond what verl
hands a loss or an estimator, and the whole-step statistics or token selection the driver computes for it. The code
that calls an entry (the actor loss, the trainer, start-up validation) does every lookup by name; an entry's own file
never types its name again.

=============  ===========================================================  ==========================================
kind           signature                                                    how it composes
=============  ===========================================================  ==========================================
advantage      ``fn(ctx: LossContext, cfg) -> (advantages, metrics)``       chained, before verl's policy loss
weight         ``fn(ctx: LossContext, cfg) -> (weights, metrics)``          multiplied into verl's rollout_is_weights
term           ``fn(ctx: LossContext, cfg) -> (loss, metrics)``             added to verl's policy loss
estimator      ``fn(ctx: EstimatorContext, cfg) -> (advantages, metrics)``  a verl advantage estimator (one per run)
controller     ``cls(cfg)``, ``update(entropy) -> {output: value}``         on the driver, once per step
=============  ===========================================================  ==========================================

Metrics are returned without a prefix (``{"dropped_frac": x}``); the caller logs them as ``<name>/dropped_frac``.
This module is pure Python (no torch, no verl): start-up validation and the launch tools can read it cheaply.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass

LOSS_KINDS = ("advantage", "weight", "term")  # in the order the actor loss applies them
KINDS = (*LOSS_KINDS, "estimator", "controller")

# What an entry may need beyond verl's own inputs (``needs=``); the trainer and validation provide / check them.
ENTROPY = "entropy"  # the current policy's per-token entropy, with gradient (actor.calculate_entropy=true)
VOCAB_STATS = "vocab_stats"  # the sampling policy's full-vocabulary sum p^2 and sum p^2 log p per token (engine/)
SEQUENCE_MEAN_OLD_LOG_PROB = "sequence_mean_old_log_prob"  # (bsz,) each response's mean old log-prob
FINAL_ANSWERS = "final_answers"  # each response's final answer, by the task's final_answer extractor
REWARD_COMPONENTS = "reward_components"  # {key: [value per response]}: the dict the task's reward function returned
NEEDS = (ENTROPY, VOCAB_STATS, SEQUENCE_MEAN_OLD_LOG_PROB, FINAL_ANSWERS, REWARD_COMPONENTS)


@dataclass(frozen=True)
class Spec:
    """Everything the rest of the code knows about one registered entry."""

    name: str
    kind: str
    impl: Callable  # the function (methods) or the class (controllers)
    config_cls: type  # its config dataclass, built from ``entropy_verl.<block>.<name>``
    reads: tuple[str, ...] | Callable[[object], tuple[str, ...]] = ()  # controller outputs it reads (or cfg -> them)
    outputs: Outputs = ()  # controllers: the coefficients update() returns (also the class's ``outputs``)
    needs: tuple[str, ...] = ()  # inputs beyond verl's, from NEEDS
    step_stats: Callable | None = None  # (ctx, cfg) -> {stat: float}: whole-step statistics (driver, ``scope: step``)
    step_selection: Callable | None = None  # (ctx, cfg, generator) -> (bsz, T) per-token values, computed on the driver
    loss_mode: str | None = None  # the actor.policy_loss.loss_mode the method is defined with, if it needs one
    ratio_only: bool = False  # acts only through the importance ratio: no effect while every ratio is 1 (on-policy)
    no_op: Callable[[object], str | None] | None = None  # cfg -> why these settings change nothing, or None

    @property
    def block(self) -> str:
        return "controllers" if self.kind == "controller" else "methods"

    @property
    def key(self) -> str:
        """Where its config lives."""
        return f"entropy_verl.{self.block}.{self.name}"

    def reads_of(self, cfg) -> tuple[str, ...]:
        return tuple(self.reads(cfg)) if callable(self.reads) else tuple(self.reads)


class Outputs(tuple):
    """A controller's output names, declared once on its registration (``outputs=("alpha",)``) and read by attribute
    everywhere else (``PIController.outputs.alpha``), so a misspelt output fails at import, not mid-run."""

    def __getattr__(self, name: str) -> str:
        if name in self:
            return name
        raise AttributeError(f"no controller output {name!r}{closest(name, self)} (outputs: {', '.join(self)})")


REGISTRY: dict[str, Spec] = {}


def coef_is_zero(cfg) -> str | None:
    """``no_op`` of a method whose whole effect is scaled by its ``coef`` setting."""
    return "coef is 0" if cfg.coef == 0 else None


def register(name: str, kind: str, config: type, **fields) -> Callable:
    """Register the decorated function (or controller class) under ``name``; ``fields`` are ``Spec``'s."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{name}: config must be a dataclass, got {config!r}")
    unknown_needs = set(fields.get("needs", ())) - set(NEEDS)
    if unknown_needs:
        raise ValueError(f"{name}: unknown needs {sorted(unknown_needs)}; known: {NEEDS}")

    if not config.__dataclass_params__.frozen:  # settings are fixed once parsed: nothing changes them mid-run
        raise TypeError(f"{name}: config {config.__name__} must be a frozen dataclass (@dataclass(frozen=True))")
    if "outputs" in fields:
        if kind != "controller":
            raise ValueError(f"{name}: only controllers declare outputs")
        fields["outputs"] = Outputs(fields["outputs"])

    def decorator(impl):
        if name in REGISTRY and REGISTRY[name].impl is not impl:
            raise ValueError(f"{name!r} is already registered (as a {REGISTRY[name].kind})")
        REGISTRY[name] = Spec(name=name, kind=kind, impl=impl, config_cls=config, **fields)
        if kind == "controller":
            impl.name, impl.outputs = name, REGISTRY[name].outputs
        return impl

    return decorator


def closest(name: str, candidates) -> str:
    """'; did you mean 'x'?' for the nearest candidate, or ''."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def get(name: str, kinds: tuple[str, ...] = KINDS) -> Spec:
    """The entry ``name`` of one of ``kinds``; a KeyError naming the closest registered one otherwise."""
    known = sorted(n for n, s in REGISTRY.items() if s.kind in kinds)
    if name not in known:
        raise KeyError(f"unknown {'/'.join(kinds)} {name!r}{closest(name, known)} (registered: {', '.join(known)})")
    return REGISTRY[name]


def specs(*kinds: str) -> list[Spec]:
    """Every registered entry of ``kinds`` (all kinds if none), by name."""
    return [REGISTRY[n] for n in sorted(REGISTRY) if not kinds or REGISTRY[n].kind in kinds]
