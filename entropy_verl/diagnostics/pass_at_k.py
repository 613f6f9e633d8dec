"""pass@k from n samples per prompt (Chen et al., "Evaluating Large Language Models Trained on Code", arXiv:2107.03374,
Eq. 1): the unbiased estimator 1 - C(n - c, k) / C(n, k) for c correct of n, averaged over prompts; and the number of
distinct correct answers per prompt (what entropy collapse takes away first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from entropy_verl import metric_names


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), as a running product (no huge binomials): 1 - prod_{i=n-c+1}^{n} (1 - k / i)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks = [2**i for i in range(int(math.log2(n)) + 1)] if n >= 1 else []
    return ks + ([n] if ks and ks[-1] != n else [])


def pass_at_k_metrics(
    correct: Sequence[Sequence[bool]],
    answers: Sequence[Sequence[str | None]] | None = None,
    data_source: str | None = None,
) -> dict[str, float]:
    """Mean pass@k over prompts for k in k_values(n) (every prompt has the same n samples), and the mean number of
    distinct correct answers per prompt when ``answers`` (canonical answer strings) are given; keyed for one
    ``data_source``'s prompts when it is given (``metric_names.pass_at``)."""
    if not correct:
        return {}
    n = len(correct[0])
    if any(len(c) != n for c in correct):
        raise ValueError("every prompt needs the same number of samples")
    metrics = {
        metric_names.pass_at(k, data_source): sum(pass_at_k(n, sum(map(bool, c)), k) for c in correct) / len(correct)
        for k in k_values(n)
    }
    if answers is not None:
        distinct = [
            len({a for a, ok in zip(ans, c, strict=True) if ok and a is not None})
            for ans, c in zip(answers, correct, strict=True)
        ]
        metrics[metric_names.distinct_correct(data_source)] = sum(distinct) / len(distinct)
    return metrics
