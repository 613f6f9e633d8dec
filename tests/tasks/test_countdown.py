"""Countdown-3 task: parser, checker, reward entry point and RL dataset format."""

import importlib.util
import random

import pytest

from entropy_verl.tasks import countdown as cd

# --- parsing and checking, hand-checked cases ---------------------------------------------------------


@pytest.mark.parametrize(
    "expr, value",
    [("7*3-5", 16), ("2+3*4", 14), ("2*3+4", 10), ("9-8-1", 0), ("1-9*9", -80), ("5", 5), ("2*3*4", 24)],
)
def test_evaluate_expression_precedence(expr, value):
    assert cd.evaluate_expression(expr) == value


@pytest.mark.parametrize("expr", ["", "7*", "*7", "7**3", "(7*3)-5", "7/3", "-7+3", "16-5", "0+1", "7 *3"])
def test_evaluate_expression_rejects_malformed(expr):
    assert cd.evaluate_expression(expr) is None


@pytest.mark.parametrize(
    "answer, ok",
    [
        ("7*3-5", True),
        ("3*7-5", True),
        (" 7*3-5 ", True),  # surrounding whitespace is stripped
        ("7*3-4", False),  # wrong number
        ("7*3-3", False),  # reuses 3, drops 5
        ("7*3", False),  # too few numbers
        ("7*3-5+1", False),  # extra number
        ("21-5", False),  # two-digit operand
        ("7*(3-5)", False),  # parentheses are not part of the language
        ("7*3-5=16", False),  # trailing garbage
        ("7+3+5", False),  # right numbers, wrong value (15)
        ("", False),
        (None, False),
    ],
)
def test_is_correct_hand_checked(answer, ok):
    assert cd.is_correct(answer, (3, 7, 5), 16) is ok


def test_is_correct_respects_precedence():
    # 2+3*4 = 14 with normal precedence, 20 if evaluated left to right.
    assert cd.is_correct("2+3*4", (2, 3, 4), 14)
    assert not cd.is_correct("2+3*4", (2, 3, 4), 20)


def test_is_correct_repeated_digits_are_a_multiset():
    assert cd.is_correct("3*3+5", (3, 3, 5), 14)
    assert not cd.is_correct("3*5+5", (3, 3, 5), 20)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("7*3-5", "7*3-5"),
        ("  7*3-5  ", "7*3-5"),
        ("7*3-5\n9+9", "7*3-5"),  # cut at the first newline
        ("7*3-5<|im_end|>", "7*3-5"),
        ("7*3-5<|im_end|>junk", "7*3-5"),
        ("7*3-5 x", None),  # trailing garbage
        ("7*3-5=16", None),
        ("7*3-", None),  # truncated
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_answer(text, expected):
    assert cd.extract_answer(text) == expected


def test_canonical_answer_distinguishes_orderings():
    assert cd.canonical_answer(" 7*3-5 ") == "7*3-5"
    assert len({cd.canonical_answer(a) for a in ["7*3-5", "3*7-5", " 7*3-5"]}) == 2


# --- problems and solutions ------------------------------------------------------------------------------


def test_format_prompt_and_ground_truth():
    assert cd.format_prompt((3, 7, 5), 16) == "3,7,5:16="
    assert cd.format_ground_truth((3, 7, 5), 16) == "3,7,5:16"
    assert cd.parse_ground_truth("3,7,5:16") == cd.Problem((3, 7, 5), 16)


def test_solutions_known_problem():
    assert cd.solutions((3, 7, 5), 16) == ["3*7-5", "7*3-5"]
    assert cd.solutions((1, 1, 1), 99) == []


def test_generated_problems_are_solvable_and_in_range():
    rng = random.Random(0)
    for _ in range(500):
        p = cd.generate_problem(rng)
        assert len(p.numbers) == 3 and all(1 <= n <= 9 for n in p.numbers)
        assert 0 <= p.target <= 99
        sols = cd.solutions(*p)
        assert sols, p
        assert all(cd.is_correct(s, *p) for s in sols)


def test_solutions_match_brute_force_checker():
    # Every syntactically valid 3-operand expression over the problem's digits is correct iff listed.
    numbers, target = (2, 3, 4), 10
    listed = set(cd.solutions(numbers, target))
    for a in "234":
        for b in "234":
            for c in "234":
                for o1 in "+-*":
                    for o2 in "+-*":
                        expr = f"{a}{o1}{b}{o2}{c}"
                        assert cd.is_correct(expr, numbers, target) == (expr in listed)


def test_generate_problem_is_deterministic():
    a = [cd.generate_problem(random.Random(7)) for _ in range(3)]
    b = [cd.generate_problem(random.Random(7)) for _ in range(3)]
    assert a == b


# --- verl reward entry point -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "solution, score",
    [("7*3-5", 1.0), ("3*7-5", 1.0), ("7*3-5\n", 1.0), ("7+3+5", 0.0), ("16", 0.0), ("", 0.0), ("7*3-5 ok", 0.0)],
)
def test_compute_score(solution, score):
    assert cd.compute_score("countdown3", solution, "3,7,5:16") == score


def test_compute_score_accepts_verl_extra_kwargs():
    got = cd.compute_score(
        data_source="countdown3",
        solution_str="7*3-5",
        ground_truth="3,7,5:16",
        extra_info={"split": "train", "index": 0},
        reward_router_address=None,
    )
    assert got == 1.0


def test_compute_score_bad_ground_truth_is_zero():
    assert cd.compute_score("countdown3", "7*3-5", "garbage") == 0.0


def test_module_loads_standalone_by_file_path():
    # verl loads custom reward functions from a file path, outside the package: no relative imports.
    spec = importlib.util.spec_from_file_location("countdown_standalone", cd.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compute_score("countdown3", "7*3-5", "3,7,5:16") == 1.0


# --- RL dataset ------------------------------------------------------------------------------------------


def test_rl_dataframe_format():
    df = cd.make_rl_dataframe(8, seed=0, split="train")
    assert list(df.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    row = df.iloc[3]
    assert row["data_source"] == "countdown3"
    assert row["ability"] == "math"
    assert len(row["prompt"]) == 1 and row["prompt"][0]["role"] == "user"
    gt = row["reward_model"]["ground_truth"]
    assert row["reward_model"]["style"] == "rule"
    assert row["prompt"][0]["content"] == gt + "="
    assert row["extra_info"] == {"split": "train", "index": 3}
    assert cd.solutions(*cd.parse_ground_truth(gt))


def test_rl_dataframe_parquet_roundtrip(tmp_path):
    import pandas as pd

    df = cd.make_rl_dataframe(16, seed=0, split="val")
    df.to_parquet(tmp_path / "val.parquet", index=False)
    back = pd.read_parquet(tmp_path / "val.parquet")
    assert back["reward_model"].iloc[5]["ground_truth"] == df["reward_model"].iloc[5]["ground_truth"]
    assert back["prompt"].iloc[5][0]["content"] == df["prompt"].iloc[5][0]["content"]


def test_train_and_val_are_disjoint_and_distinct():
    train = cd.make_rl_dataframe(4096, seed=0, split="train")
    val = cd.make_rl_dataframe(256, seed=0, split="val")
    train_prompts = {p[0]["content"] for p in train["prompt"]}
    val_prompts = {p[0]["content"] for p in val["prompt"]}
    assert len(train_prompts) == 4096 and len(val_prompts) == 256
    assert not train_prompts & val_prompts
    # Also disjoint whatever the seeds: the split is a function of the problem itself.
    assert not set(cd.all_problems("train")) & set(cd.all_problems("val"))


def test_rl_dataframe_is_deterministic_and_seeded():
    a = cd.make_rl_dataframe(32, seed=1, split="train")
    b = cd.make_rl_dataframe(32, seed=1, split="train")
    c = cd.make_rl_dataframe(32, seed=2, split="train")
    assert a.equals(b)
    assert not a.equals(c)


def test_rl_dataframe_rejects_impossible_requests():
    with pytest.raises(ValueError):
        cd.make_rl_dataframe(10_000, seed=0, split="val")
    with pytest.raises(ValueError):
        cd.make_rl_dataframe(4, seed=0, split="test")


def test_countdown_final_answer_is_the_value():
    from entropy_verl.tasks.countdown import final_answer

    assert final_answer("7*3-5") == "16" and final_answer("3*7-5") == "16" and final_answer("7*3-") is None


def test_countdown_reward_components():
    from entropy_verl.tasks.countdown import compute_score_components

    assert compute_score_components("countdown", "7*3-5", "3,7,5:16") == {
        "score": 1.0,
        "accuracy_reward": 1.0,
        "format_reward": 1.0,
    }
    assert compute_score_components("countdown", "7*3+5", "3,7,5:16") == {
        "score": 0.0,
        "accuracy_reward": 0.0,
        "format_reward": 1.0,
    }
    assert compute_score_components("countdown", "7*3-", "3,7,5:16")["format_reward"] == 0.0
