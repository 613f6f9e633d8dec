"""GSM8K-style math word problems (task=gsm8k): verl scores them itself (``verl.utils.reward_score.gsm8k``, chosen
by ``data_source == "openai/gsm8k"``), so this module only gives our code the response's final answer, extracted the
way verl's scorer does ("#### <number>", strict), for SEED-GRPO's clusters and the distinct-answer diagnostics.
Make the parquet files with verl's ``examples/data_preprocess/gsm8k.py``.
"""

from __future__ import annotations

DATA_SOURCE = "openai/gsm8k"
DATA_SOURCES = (DATA_SOURCE,)  # the data this module's functions are for (checked at start-up)


def final_answer(text: str | None) -> str | None:
    """The number after the last "####" in the response, as verl's gsm8k scorer reads it, or None."""
    from verl.utils.reward_score.gsm8k import extract_solution

    return None if text is None else extract_solution(text, method="strict")
