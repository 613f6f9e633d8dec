"""Old vs proposed verl.trainer.ppo.metric_utils bootstrap on the demo's validation shape (128 prompts x 32 samples,
4 reward variables), with and without majority voting ("pred"): every output value equal, CPU time of each."""

import time

import numpy as np
from verl.trainer.ppo import metric_utils

original = metric_utils.bootstrap_metric
NUMERIC_REDUCTIONS = (np.max, np.min, np.mean)


def majority_values(codes: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """calc_maj_val per row of (n_bootstrap, subset_size) vote codes: the most common vote, ties to the vote that
    appears first in the row (dict insertion order), and the value of its first appearance."""
    n_rows, size = codes.shape
    onehot = codes[:, :, None] == np.arange(codes.max() + 1)  # (rows, size, votes)
    counts = onehot.sum(axis=1)
    first = np.where(onehot.any(axis=1), onehot.argmax(axis=1), size)  # first position of each vote, size if absent
    tied = counts == counts.max(axis=1, keepdims=True)
    position = np.where(tied, first, size).min(axis=1)  # the earliest-appearing of the most common votes
    return vals[np.arange(n_rows), position]


def vectorised(data, subset_size, reduce_fns, n_bootstrap=1000, seed=42):
    np.random.seed(seed)
    data_np = np.array(data, dtype=object)
    idx = np.random.choice(len(data_np), size=(n_bootstrap, subset_size), replace=True)  # the same draws as before
    if all(fn in NUMERIC_REDUCTIONS for fn in reduce_fns) and all(
        isinstance(v, (int, float, bool, np.number)) for v in data
    ):
        samples = np.asarray(data, dtype=np.float64)[idx]  # one gather for all resamples
        results = [fn(samples, axis=1) for fn in reduce_fns]
    elif len(reduce_fns) == 1 and getattr(reduce_fns[0], "func", None) is metric_utils.calc_maj_val:
        keys = reduce_fns[0].keywords
        code: dict = {}  # vote -> integer, by dict-key equality as calc_maj_val groups them
        codes = np.array([code.setdefault(d[keys["vote_key"]], len(code)) for d in data])
        vals = np.array([d[keys["val_key"]] for d in data], dtype=np.float64)
        results = [majority_values(codes[idx], vals[idx])]
    else:  # any other reduction: the loop as before
        results = [np.array([fn(data_np[row]) for row in idx], dtype=np.float64) for fn in reduce_fns]
    return [(float(np.mean(r)), float(np.std(r))) for r in results]


def flat(result):
    return {(s, v, m): x for s, vs in result.items() for v, ms in vs.items() for m, x in ms.items()}


n, rng = 128 * 32, np.random.default_rng(0)
infos = {
    k: rng.integers(0, 2, n).astype(float).tolist() for k in ("reward", "score", "accuracy_reward", "format_reward")
}
for with_pred in (False, True):
    if with_pred:
        infos["pred"] = [f"answer {v}" for v in rng.integers(0, 5, n)]
    args = (["countdown3"] * n, [f"u{i // 32}" for i in range(n)], infos)
    out = {}
    for name, fn in (("verl 0.9.1", original), ("vectorised", vectorised)):
        metric_utils.bootstrap_metric = fn
        t = time.process_time()
        out[name] = flat(metric_utils.process_validation_metrics(*args))
        print(f"{'with' if with_pred else 'without'} pred, {name}: {time.process_time() - t:.2f} CPU-s")
    metric_utils.bootstrap_metric = original
    a, b = out.values()
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), "outputs differ"
    print(f"identical: {len(a)} metrics, every value equal")
