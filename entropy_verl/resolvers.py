"""The ``${...}`` resolvers of entropy_verl's configs, and reading Hydra's overrides. The plugin registers the
resolvers in every process that imports verl, so a config that uses them resolves under either entry point
(``python -m entropy_verl.main`` or verl's own ``python -m verl.trainer.main_ppo``) and inside Ray's processes:

- ``${embedded:model_dir}`` (``train_parquet``, ``val_parquet``, ``root``): the embedded default, built on first use;
- ``${module_file:pkg.mod}``: the path of a module's file (a reward function's ``path``);
- ``${entropy_verl_run_name:}``: the experiment chosen, else the method(s), while Hydra composes;
- ``${entropy_verl_sum:a,b,...}``: the sum of numbers (``rollout.max_model_len`` = prompt + response lengths).

Pure Python apart from OmegaConf (which ``import verl`` has already loaded).
"""

from __future__ import annotations

import importlib.util

from omegaconf import OmegaConf


def _embedded(key: str) -> str:
    from entropy_verl.embedded import ensure_embedded_default

    paths = ensure_embedded_default()
    if not hasattr(paths, key):
        raise KeyError(f"${{embedded:{key}}}: unknown key; known: model_dir, train_parquet, val_parquet, root")
    return str(getattr(paths, key))


def _module_file(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"${{module_file:{module}}}: no such module")
    return spec.origin


def override_key(override: str) -> str:
    """A Hydra override's key, without its ``+``/``++``/``~`` prefix: ``+entropy_verl.x=1`` -> ``entropy_verl.x``."""
    return override.partition("=")[0].lstrip("+~")


def listed_methods() -> list[str]:
    """The methods a list choice names (``method=[a,b]``), in order; Hydra records a list choice only among the
    overrides."""
    from hydra.core.hydra_config import HydraConfig

    for override in HydraConfig.get().overrides.task:
        if override_key(override) == "method":
            return [v.strip() for v in override.partition("=")[2].strip("[]").split(",") if v.strip()]
    return []


def run_name() -> str:
    """``${entropy_verl_run_name:}``: the experiment chosen, else the method(s), e.g. ``clip_b`` or
    ``entropy_adv+steer``."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():  # resolved outside Hydra's composition (e.g. in verl's TaskRunner)
        raise ValueError(
            "${entropy_verl_run_name:} resolves only while Hydra composes the config (python -m entropy_verl.main "
            "pins it); under verl's own entry point set trainer.experiment_name"
        )
    choices = HydraConfig.get().runtime.choices
    for group in ("experiment", "method"):
        if isinstance(choices.get(group), str):
            return choices[group]
    return "+".join(listed_methods()) or "run"


def register() -> None:
    """``${embedded:model_dir}`` builds the embedded default on first use; ``${module_file:pkg.mod}`` -> path;
    ``${entropy_verl_run_name:}`` -> the experiment or method chosen."""
    OmegaConf.register_new_resolver("embedded", _embedded, replace=True)
    OmegaConf.register_new_resolver("module_file", _module_file, replace=True)
    OmegaConf.register_new_resolver("entropy_verl_run_name", run_name, replace=True)
    OmegaConf.register_new_resolver("entropy_verl_sum", lambda *values: sum(values), replace=True)
