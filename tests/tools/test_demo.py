from entropy_verl.tools.demo import side_by_side


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


def test_side_by_side_reads_the_token_mean_entropy_where_logged():
    """Under Dr. GRPO's loss_agg_mode verl's actor/entropy is length-normalised (0.3 here); the table reads the
    token mean the trainer logs (0.6)."""
    logged = [{**row, "actor/entropy": 0.3, "entropy/token_mean": 0.6} for row in rows([0.3] * 12)]
    text = side_by_side({"Dr. GRPO": logged}, {"Dr. GRPO": 0.6})
    assert "Dr. GRPO  start      1-4        0.600" in text and "worst step by 0%" in text


def test_pass_at_k_table_gives_each_runs_first_and_last_validation():
    from entropy_verl.tools.demo import pass_at_k_table

    def validation(step, p1, p32, distinct):
        return {"step": step, "val/pass@1": p1, "val/pass@32": p32, "val/distinct_correct": distinct}

    text = pass_at_k_table(
        {
            "GRPO": [validation(0, 0.3, 0.9, 4.0), *rows([0.6, 0.5]), validation(2, 0.4, 0.7, 2.5)],
            "EntroPIC": [validation(0, 0.3, 0.9, 4.0), *rows([0.6, 0.6])],  # no final validation: its start only
        }
    )
    assert text.splitlines() == [
        "run        step   pass@1  pass@32  distinct",
        "GRPO          0    0.300    0.900      4.00",
        "GRPO          2    0.400    0.700      2.50",
        "EntroPIC      0    0.300    0.900      4.00",
    ]


def test_side_by_side_skips_validation_only_rows():
    validation_only = {"step": 0, "val/pass@1": 0.3}
    text = side_by_side({"GRPO": [validation_only, *rows([0.6] * 10 + [0.3] * 10)]}, {})
    assert "GRPO: mean step 2.00s; entropy end/start 0.50" in text


def test_the_runs_validate_at_the_end_the_start_once_for_all_and_the_user_wins(tmp_path):
    from entropy_verl.main import compose_run
    from entropy_verl.tools.demo import VAL_SAMPLES, start_validation, validation_overrides

    overrides = validation_overrides(["trainer.total_training_steps=20", "data.val_max_samples=8"])
    assert overrides[:2] == ["trainer.val_before_train=false", "trainer.test_freq=20"]
    # the shared start: the initial weights validated and nothing trained, with the user's overrides (their seeds
    # choose the held-out prompts)
    start = start_validation(["data.seed=3", "data.val_max_samples=8"], str(tmp_path / "start"))
    config = compose_run(list(start.overrides))
    assert config.trainer.val_only and config.trainer.val_before_train and config.data.seed == 3
    assert config.data.val_max_samples == 8 and config.actor_rollout_ref.rollout.val_kwargs.n == VAL_SAMPLES
    assert start.run_dir == config.entropy_verl.run_dir == str(tmp_path / "start") and start.steps == 0
    assert f"actor_rollout_ref.rollout.val_kwargs.n={VAL_SAMPLES}" in overrides
    assert overrides[-1] == "data.val_max_samples=8"  # Hydra applies overrides in order: the last one wins
