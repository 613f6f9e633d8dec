"""The run's reward function, resolved and called once on a row of the run's own training data before Ray starts.

verl picks its scorer per row from ``data_source`` and only at the first reward computation, after the whole
start-up and the first rollout: a data_source verl does not score, a custom function that fails to load or returns
the wrong thing, or a reward without the components an estimator normalises (GDPO) would fail minutes (on a cluster,
much more) into the run. Here they fail in the driver, naming the key.
"""

from __future__ import annotations

import math
from numbers import Real

from omegaconf import DictConfig

from entropy_verl.config import ConfigError

REWARD_KEY = "reward.custom_reward_function"
EMPTY_RESPONSE = ""  # every scorer meets empty generations in RL; it is also an answer no task counts as correct


def first_row(path: str) -> dict:
    """The first row of a parquet file, as a dict (verl's RL format: data_source, prompt, reward_model, ...)."""
    import pyarrow.parquet as pq

    try:
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=1), None)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: say which
        raise ConfigError("data.train_files", f"{path!r} is not a readable parquet file: {exc}") from None
    if batch is None or batch.num_rows == 0:
        raise ConfigError("data.train_files", f"{path!r} has no rows")
    return batch.to_pylist()[0]


def reward_function(config: DictConfig, scorer: str):
    """(function, the key that names it): the task's custom function, loaded as verl loads it, or verl's default
    scorer."""
    if scorer == "custom":
        from verl.trainer.ppo.reward import get_custom_reward_fn

        try:
            return get_custom_reward_fn(config), f"{REWARD_KEY}.name"
        except Exception as exc:  # noqa: BLE001 - FileNotFoundError, AttributeError, a syntax error in the file...
            raise ConfigError(f"{REWARD_KEY}.path", f"the reward function could not be loaded: {exc!r}") from None
    from verl.utils.reward_score import default_compute_score

    return default_compute_score, "entropy_verl.task.data_source"


def check_reward(config: DictConfig, path: str, task, required_components: list[str] | None) -> dict:
    """Call the run's reward function once on the first row of the training file ``path`` (whose columns
    ``entropy_verl.validation.check_data_files`` has checked) and check what it returns; returns that row."""
    row = first_row(path)
    if row["data_source"] not in task.data_sources:
        raise ConfigError(
            "entropy_verl.task.data_source",
            f"is {task.data_source!r}, and the training data's rows have data_source {row['data_source']!r}; verl "
            "scores each row by its own data_source",
        )
    ground_truth = (row["reward_model"] or {}).get("ground_truth")
    fn, key = reward_function(config, task.scorer)
    try:
        result = fn(
            data_source=row["data_source"],
            solution_str=EMPTY_RESPONSE,
            ground_truth=ground_truth,
            extra_info=row.get("extra_info"),
        )
    except NotImplementedError:
        raise ConfigError(
            key, f"verl has no default scorer for data_source {row['data_source']!r}: use task=custom with yours"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's function failed on a real row
        raise ConfigError(key, f"the reward function failed on the first training row: {exc!r}") from None
    score = result.get("score") if isinstance(result, dict) else result
    if isinstance(score, bool) or not isinstance(score, Real) or not math.isfinite(score):
        raise ConfigError(
            key, f"the reward function returned {result!r}: expected a finite number, or a dict with a 'score' one"
        )
    missing = [name for name in required_components or () if not isinstance(result, dict) or name not in result]
    if missing:
        raise ConfigError(
            "entropy_verl.task.reward_components",
            f"names {missing}, which the reward function's result does not hold (it returned {result!r})",
        )
    return row
