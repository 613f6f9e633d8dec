from entropy_verl.demo import side_by_side


def rows(entropies):
    return [
        {"step": i + 1, "actor/entropy": h, "critic/score/mean": 0.5, "timing_s/step": 2.0}
        for i, h in enumerate(entropies)
    ]


def test_side_by_side_reports_phases_and_target_deviation():
    text = side_by_side(
        {"GRPO": rows([0.6] * 10 + [0.4] * 10 + [0.2] * 10), "EntroPIC": rows([0.5] * 27 + [0.55] * 3)},
        {"EntroPIC": 0.5},
    )
    assert "GRPO      start      1-10       0.600" in text
    assert "GRPO      end       21-30       0.200" in text
    assert "GRPO: mean step 2.00s; entropy end/start 0.33 (10-step means)" in text
    # EntroPIC's last third is steps 21-30: 7 steps at 0.5 and 3 at 0.55 -> window mean 0.515 (3% off), worst step 10%
    assert "EntroPIC: mean step 2.00s" in text and "worst 10-step mean off by 3%, worst step by 10%" in text
