"""The strict parsing of config values and dataclasses (``entropy_verl/config.py``) that every block goes through."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pytest

from entropy_verl.config import ConfigError, build_config, check_value, field_docs


@dataclass
class Base:
    rate: float = 0.1
    """A rate; >= 0."""


@dataclass
class Example(Base):
    mode: Literal["exp", "linear"] = "exp"
    """How it falls."""
    limit: float | None = None
    """Clamp, or null."""
    keys: list[str] | None = None
    """Some keys."""
    derived: int = field(init=False, default=0)

    def __post_init__(self):
        if self.rate < 0:
            raise ValueError(f"rate must be >= 0, got {self.rate}")


@pytest.mark.parametrize(
    "value,expected,out",
    [
        (1, float, 1.0),
        (0.5, float, 0.5),
        (3, int, 3),
        (True, bool, True),
        ("a", str, "a"),
        (None, float | None, None),
        (2, float | None, 2.0),
        (["a", "b"], list[str], ["a", "b"]),
        ("exp", Literal["exp", "linear"], "exp"),
    ],
)
def test_values_that_fit(value, expected, out):
    result = check_value(value, expected, "k")
    assert result == out and type(result) is type(out)


@pytest.mark.parametrize(
    "value,expected,words",
    [
        (True, float, "expected a number, got True (bool)"),
        ("0.5", float, "expected a number"),
        (math.nan, float, "finite"),
        (math.inf, float | None, "finite"),
        (1.5, int, "an integer"),
        (False, int, "an integer"),
        ("false", bool, "true or false"),
        (1, bool, "true or false"),
        (3, str, "a string"),
        ("lineer", Literal["exp", "linear"], "did you mean 'linear'"),
        ([1], list[str], "k[0]: expected a string"),
        ("a", list[str], "a list"),
    ],
)
def test_values_that_do_not_fit_name_the_key(value, expected, words):
    with pytest.raises(ConfigError) as err:
        check_value(value, expected, "k")
    assert err.value.key.startswith("k") and words in str(err.value)


def test_build_config_is_strict_and_names_each_key():
    assert build_config(Example, {"rate": 1, "mode": "linear"}, "b") == Example(rate=1.0, mode="linear")
    with pytest.raises(
        ConfigError, match=r"^b\.rte: no such setting; did you mean 'rate'\? \(settings: rate \(A rate; >= 0\.\)"
    ):
        build_config(Example, {"rte": 1}, "b")
    with pytest.raises(ConfigError, match=r"^b\.derived: no such setting"):  # derived fields are not settings
        build_config(Example, {"derived": 1}, "b")
    with pytest.raises(ConfigError, match=r"^b: rate must be >= 0"):  # the dataclass's own range check
        build_config(Example, {"rate": -1}, "b")


def test_field_docs_include_the_base_classes_fields():
    assert field_docs(Example) == {
        "rate": "A rate; >= 0.",
        "mode": "How it falls.",
        "limit": "Clamp, or null.",
        "keys": "Some keys.",
    }


def test_every_block_of_the_entropy_verl_config_documents_its_fields():
    from entropy_verl.config import TaskConfig, settable_fields
    from entropy_verl.diagnostics.step import DiagnosticsConfig
    from entropy_verl.trainer.safety import SafetyConfig

    for cls in (TaskConfig, DiagnosticsConfig, SafetyConfig):  # the registered entries' configs: tests/test_registry.py
        assert set(field_docs(cls)) == set(settable_fields(cls)), cls.__name__


def test_a_parsed_run_config_is_frozen(run_config):
    import dataclasses

    from entropy_verl.config import parse

    parsed = parse(run_config("experiment=embedded_entropic"))
    (_, term), (_, pi) = parsed.methods[0], parsed.controllers[0]
    for cfg, name in (
        (term, "prob_threshold"),
        (pi, "kp"),
        (parsed.task, "data_source"),
        (parsed.safety, "max_nonfinite_steps"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, name, getattr(cfg, name))


@pytest.mark.parametrize(
    "overrides,line",
    [
        (["method=grpo"], "advantages: grpo | weights: 1 | loss: vanilla"),
        (["experiment=embedded_entropic"], "advantages: grpo | weights: 1 | loss: vanilla + entropic(alpha <- pi)"),
        (
            ["method=[entropy_adv,top_entropy,steer,entropic]"],
            "advantages: grpo -> entropy_adv | weights: top_entropy x steer | loss: vanilla + entropic(alpha <- pi)",
        ),
        (["method=kl_cov_global"], "advantages: grpo | weights: 1 | loss: pg_unclipped + kl_cov_global"),
        (["method=nsr"], "advantages: nsr | weights: 1 | loss: vanilla"),
        (
            [
                "method=pos_adv_reweight",
                "+entropy_verl.controllers.lambda_schedule={}",
                "entropy_verl.methods.pos_adv_reweight.lam=null",
            ],
            "advantages: grpo | weights: pos_adv_reweight(pos_adv_lambda <- lambda_schedule) | loss: vanilla",
        ),
    ],
)
def test_the_objective_a_run_composed_in_one_line(run_config, overrides, line):
    from entropy_verl.config import objective, parse

    config = run_config(*overrides)
    assert objective(config, parse(config)) == line
