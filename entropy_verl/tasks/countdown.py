"""Countdown-3: a tiny verifiable arithmetic task for RLVR experiments.

A problem is three digits 1-9 and a target 0-99, shown as ``3,7,5:16=``. An answer is an expression that
uses each of the three digits exactly once with the binary operators ``+ - *`` and no parentheses,
evaluated with the usual precedence (``*`` before ``+``/``-``, left to right otherwise), e.g. ``7*3-5``.
Many problems have several correct answers, which makes the task useful for studying entropy: a policy
can stay correct while spreading probability over distinct solutions.

This module is pure Python on purpose. verl loads a custom reward function *by file path*
(``reward.custom_reward_function.path``), as a standalone module, so nothing here may use relative imports
or import heavy libraries at module top (pandas is imported inside :func:`make_rl_dataframe` only).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
from typing import NamedTuple

DATA_SOURCE = "countdown3"
DATA_SOURCES = (DATA_SOURCE,)  # the data this module's functions are for (checked at start-up)
ABILITY = "math"
OPERATORS = ("+", "-", "*")
DIGITS = tuple(range(1, 10))
TARGET_MIN, TARGET_MAX = 0, 99
SPLITS = ("train", "val")
# One problem in VAL_BUCKETS goes to the held-out split (decided by a hash, see split_of).
VAL_BUCKETS = 8
# Markers that end an answer inside a decoded completion; verl usually strips special tokens already.
_STOP_MARKERS = ("\n", "<|im_end|>", "<|endoftext|>", "<|im_start|>")


class Problem(NamedTuple):
    """Three operand digits (in prompt order) and the target value."""

    numbers: tuple[int, int, int]
    target: int


# ---------------------------------------------------------------------------------------------------------
# Safe expression parser (no eval): grammar  expr := digit (op digit)*,  digit in 1..9, op in + - *
# ---------------------------------------------------------------------------------------------------------


def _tokenize_expression(expr: str) -> tuple[list[int], list[str]] | None:
    """Split ``expr`` into operands and operators, or None if it is not ``digit (op digit)*``.

    Operands must be single characters 1-9, so ``16`` (two-digit), ``0``, unary minus, parentheses and
    whitespace inside the expression are all rejected.
    """
    if not expr or len(expr) % 2 == 0:
        return None
    operands: list[int] = []
    operators: list[str] = []
    for pos, ch in enumerate(expr):
        if pos % 2 == 0:
            if ch not in "123456789":
                return None
            operands.append(int(ch))
        else:
            if ch not in OPERATORS:
                return None
            operators.append(ch)
    return operands, operators


def _evaluate(operands: list[int], operators: list[str]) -> int:
    """Evaluate with normal precedence: fold ``*`` runs into terms, then add/subtract left to right."""
    terms = [operands[0]]
    signs = [1]
    for op, value in zip(operators, operands[1:], strict=True):
        if op == "*":
            terms[-1] *= value
        else:
            terms.append(value)
            signs.append(1 if op == "+" else -1)
    return sum(s * t for s, t in zip(signs, terms, strict=True))


def evaluate_expression(expr: str) -> int | None:
    """Value of a well-formed expression string, or None when it is malformed."""
    parsed = _tokenize_expression(expr)
    if parsed is None:
        return None
    return _evaluate(*parsed)


# ---------------------------------------------------------------------------------------------------------
# Problems and solutions
# ---------------------------------------------------------------------------------------------------------


def format_prompt(numbers, target: int) -> str:
    """Prompt string, e.g. ``3,7,5:16=``."""
    return f"{','.join(str(n) for n in numbers)}:{target}="


def format_ground_truth(numbers, target: int) -> str:
    """Ground-truth string stored in the dataset, e.g. ``3,7,5:16`` (the prompt without ``=``)."""
    return f"{','.join(str(n) for n in numbers)}:{target}"


def parse_ground_truth(ground_truth: str) -> Problem:
    """Inverse of :func:`format_ground_truth`; also accepts a trailing ``=`` (i.e. a prompt)."""
    text = ground_truth.strip().rstrip("=")
    nums_text, target_text = text.split(":")
    numbers = tuple(int(x) for x in nums_text.split(","))
    return Problem(numbers, int(target_text))


@functools.cache
def _solution_table(numbers: tuple[int, ...]) -> dict[int, tuple[str, ...]]:
    """All values reachable from ``numbers`` -> sorted distinct expressions reaching them.

    Enumerates every permutation x operator pair (6 x 9 = 54 candidates). Cached per digit tuple because
    there are only 9**3 of them and the SFT loop queries the same tuples over and over.
    """
    table: dict[int, set[str]] = {}
    for perm in itertools.permutations(numbers):
        for ops in itertools.product(OPERATORS, repeat=len(numbers) - 1):
            expr = str(perm[0]) + "".join(op + str(n) for op, n in zip(ops, perm[1:], strict=True))
            table.setdefault(_evaluate(list(perm), list(ops)), set()).add(expr)
    return {value: tuple(sorted(exprs)) for value, exprs in table.items()}


def solutions(numbers, target: int) -> list[str]:
    """All distinct valid answers for the problem, sorted (empty if unsolvable)."""
    return list(_solution_table(tuple(int(n) for n in numbers)).get(int(target), ()))


def split_of(numbers, target: int) -> str:
    """Deterministic train/val assignment by hashing the problem, so the two splits never share prompts.

    hashlib rather than ``hash()`` because Python salts string hashes per process.
    """
    digest = hashlib.sha256(format_ground_truth(numbers, target).encode()).digest()
    return "val" if digest[0] % VAL_BUCKETS == 0 else "train"


@functools.cache
def _problem_pool(split: str | None) -> tuple[Problem, ...]:
    """Every solvable problem (optionally of one split), in a fixed order. 6396 in total."""
    out = []
    for numbers in itertools.product(DIGITS, repeat=3):
        for target in sorted(_solution_table(numbers)):
            if TARGET_MIN <= target <= TARGET_MAX and (split is None or split_of(numbers, target) == split):
                out.append(Problem(numbers, target))
    return tuple(out)


def all_problems(split: str | None = None) -> list[Problem]:
    """Every solvable problem (optionally of one split), in a fixed order."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return list(_problem_pool(split))


def generate_problem(rng: random.Random, split: str | None = None) -> Problem:
    """Draw a solvable problem uniformly at random (optionally restricted to one split).

    This is the same distribution as drawing three uniform digits and a uniform target and rejecting
    unsolvable problems, but drawn from the precomputed pool because the SFT loop needs ~25k per second.
    With ``split`` set, only problems of that split are drawn, so e.g. SFT data stays off val prompts.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return rng.choice(_problem_pool(split))


# ---------------------------------------------------------------------------------------------------------
# Answer checking and verl reward entry point
# ---------------------------------------------------------------------------------------------------------


def extract_answer(text: str | None) -> str | None:
    """The answer expression in a model completion, or None if the completion is malformed.

    The completion is cut at the first newline or chat special token (the model should stop with EOS;
    anything after it is not part of the answer), then stripped. What is left must be exactly a
    well-formed expression; trailing garbage such as ``7*3-5=16`` or ``7*3-5 x`` makes it malformed.
    """
    if text is None:
        return None
    cut = len(text)
    for marker in _STOP_MARKERS:
        idx = text.find(marker)
        if idx != -1:
            cut = min(cut, idx)
    answer = text[:cut].strip()
    return answer if _tokenize_expression(answer) is not None else None


def final_answer(text: str | None) -> str | None:
    """The value a completion's expression evaluates to (what SEED-GRPO clusters responses by), or None."""
    answer = extract_answer(text)
    value = evaluate_expression(answer) if answer is not None else None
    return None if value is None else str(value)


def canonical_answer(answer: str) -> str:
    """Key for counting distinct answers: the stripped expression string (``7*3-5`` != ``3*7-5``)."""
    return answer.strip()


def is_correct(answer: str | None, numbers, target: int) -> bool:
    """True iff ``answer`` uses exactly ``numbers`` (as a multiset, single digits) and evaluates to ``target``."""
    if answer is None:
        return False
    parsed = _tokenize_expression(answer.strip())
    if parsed is None:
        return False
    operands, operators = parsed
    if sorted(operands) != sorted(int(n) for n in numbers):
        return False
    return _evaluate(operands, operators) == int(target)


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """verl custom reward function: 1.0 for a correct answer, else 0.0.

    ``ground_truth`` is ``"3,7,5:16"``; ``solution_str`` is the decoded response. Extra keyword arguments
    that verl may pass (e.g. reward-router settings) are accepted and ignored.
    """
    try:
        problem = parse_ground_truth(ground_truth)
    except (ValueError, AttributeError):
        return 0.0
    return 1.0 if is_correct(extract_answer(solution_str), problem.numbers, problem.target) else 0.0


def compute_score_components(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict[str, float]:
    """verl custom reward function with separate components (for GDPO): ``score`` (the reward, as ``compute_score``)
    plus ``accuracy_reward`` (1 for a correct answer) and ``format_reward`` (1 for a well-formed expression, right or
    wrong). verl's reward loop keeps the dict with the sample as ``reward_extra_info``."""
    accuracy = compute_score(data_source, solution_str, ground_truth, extra_info)
    well_formed = 1.0 if extract_answer(solution_str) is not None else 0.0
    return {"score": accuracy, "accuracy_reward": accuracy, "format_reward": well_formed}


# ---------------------------------------------------------------------------------------------------------
# verl RL dataset
# ---------------------------------------------------------------------------------------------------------


def make_rl_rows(n: int, seed: int, split: str) -> list[dict]:
    """``n`` distinct problems of ``split`` as verl RL dataset rows (see :func:`make_rl_dataframe`)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    pool = _problem_pool(split)
    if n > len(pool):
        raise ValueError(f"asked for {n} distinct {split} problems but only {len(pool)} exist")
    # Sampling without replacement keeps prompts distinct: duplicates would only reweight the data.
    rng = random.Random(f"countdown3-{split}-{seed}")
    rows = []
    for problem in rng.sample(pool, n):
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [{"role": "user", "content": format_prompt(*problem)}],
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": format_ground_truth(*problem)},
                "extra_info": {"split": split, "index": len(rows)},
            }
        )
    return rows


def make_rl_dataframe(n: int, seed: int, split: str):
    """A pandas DataFrame of ``n`` distinct ``split`` problems in verl's RL parquet format.

    Columns: data_source, prompt (one user chat message), ability, reward_model {style, ground_truth},
    extra_info {split, index}. Train and val never share a prompt (see :func:`split_of`).
    """
    import pandas as pd

    return pd.DataFrame(make_rl_rows(n, seed, split))
