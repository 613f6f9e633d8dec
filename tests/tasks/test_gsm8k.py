"""task=gsm8k: our final-answer extractor reads a response the way verl's own gsm8k scorer does."""

from verl.utils.reward_score import default_compute_score

from entropy_verl.tasks.gsm8k import DATA_SOURCE, final_answer


def test_final_answer_is_what_verls_scorer_compares():
    response = "She has 3 + 4 = 7 apples, then doubles them.\n#### 14"
    assert final_answer(response) == "14" and final_answer("the answer is 14") is None and final_answer(None) is None
    assert default_compute_score(DATA_SOURCE, response, "14") == 1.0  # verl picks its gsm8k scorer by data_source
    assert default_compute_score(DATA_SOURCE, "#### 1,234", "1234") == 1.0 and final_answer("#### 1,234") == "1234"
