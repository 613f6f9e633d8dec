"""The comparison table from finished runs' metrics (the runs themselves are verl's trainer, tested elsewhere)."""

from __future__ import annotations

import pytest

from entropy_verl.tools.compare import format_table, method_row


def rows(entropies, rewards, step_s=(9.0, 2.0, 4.0)):
    return [
        {"step": i + 1, "actor/entropy": e, "critic/score/mean": r, "timing_s/step": t}
        for i, (e, r, t) in enumerate(zip(entropies, rewards, step_s, strict=True))
    ]


def test_method_row_start_end_window_and_step_time_without_warm_up():
    r = method_row("clip_b", rows([0.6, 0.5, 0.3], [0.2, 0.4, 0.6]), window=2)
    assert (
        r["entropy_start"] == 0.6 and r["entropy_end"] == pytest.approx(0.4) and r["reward_end"] == pytest.approx(0.5)
    )
    assert r["step_s"] == pytest.approx(3.0) and r["steps"] == 3


def test_method_row_reads_the_token_mean_entropy_where_logged():
    """Dr. GRPO's verl actor/entropy is length-normalised; the logged token mean is what the table shows."""
    logged = [
        {**row, "entropy/token_mean": e} for row, e in zip(rows([0.45] * 3, [0.2] * 3), (0.6, 0.5, 0.3), strict=True)
    ]
    r = method_row("dr_grpo", logged, window=2)
    assert r["entropy_start"] == 0.6 and r["entropy_end"] == pytest.approx(0.4)
    assert r["entropy_ratio"] == pytest.approx(0.4 / 0.6)


def test_table_has_a_row_per_method_and_the_difference_to_grpo():
    results = [
        method_row("grpo", rows([0.6, 0.5, 0.3], [0.2, 0.4, 0.6]), 2),
        method_row("nsr", rows([0.6, 0.6, 0.6], [0.2, 0.3, 0.3]), 2),
    ]
    table = format_table(results, 2).splitlines()
    assert len(table) == 4 and table[2].startswith("| grpo |") and table[3].startswith("| nsr |")
    assert "| 0.600 | 1.00 | +0.200 |" in table[3]  # end 0.6 vs GRPO's 0.4
    assert table[3].endswith("| 3.00 | 1.00x |")


def test_pass_at_k_of_the_last_validation_and_budget_overrides():
    from entropy_verl.tools.compare import last_pass_at, merged

    rows = [
        {"step": 1, "val/pass@1": 0.1, "val/pass@8": 0.5},
        {"step": 2},
        {"step": 3, "val/pass@1": 0.2, "val/pass@8": 0.6},
        {"step": 4},
    ]
    assert last_pass_at(rows) == {1: 0.2, 8: 0.6}
    row = method_row(
        "x", [dict(r, **{"actor/entropy": 0.5, "critic/score/mean": 0.3, "timing_s/step": 1.0}) for r in rows], 2
    )
    assert row["pass@1"] == 0.2 and row["pass@n"] == 0.6 and row["n"] == 8
    assert merged(["a=1", "b=2"], ["b=3", "+c=4"]) == ["a=1", "b=3", "+c=4"]


def test_plot_draws_entropy_reward_and_pass_at_k_from_runs_jsonl(tmp_path):
    import json

    from entropy_verl.tools.plot import main, pass_at_keys, smoothed

    for name, slope in (("grpo", -0.02), ("nsr", 0.0)):
        run = tmp_path / name
        run.mkdir()
        with open(run / "metrics.jsonl", "w") as f:
            for step in range(1, 11):
                data = {"actor/entropy": 0.6 + slope * step, "critic/score/mean": 0.3 + 0.01 * step}
                if step % 5 == 0:
                    data.update({"val/pass@1": 0.3, "val/pass@2": 0.4, "val/pass@8": 0.6})
                f.write(json.dumps({"step": step, "data": data}) + "\n")
    out = main([str(tmp_path / "grpo"), str(tmp_path / "nsr"), "--out", str(tmp_path / "fig.png")])
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert pass_at_keys([{"val/pass@1": 1, "val/pass@8": 1, "val/pass@2": 1}]) == ["val/pass@1", "val/pass@8"]
    assert smoothed([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def write_jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in rows))


def test_a_validation_only_row_is_not_a_training_step():
    r = method_row(
        "x", [{"step": 0, "val/pass@1": 0.1, "val/pass@4": 0.3}, *rows([0.6, 0.5], [0.2, 0.4], (9.0, 2.0))], 1
    )
    assert r["steps"] == 2 and r["entropy_start"] == 0.6 and r["step_s"] == 2.0 and r["pass@1"] == 0.1


# ---- several seeds ---------------------------------------------------------------------------------------------------


def test_each_run_gets_its_seed_in_every_seed_key_seeds_outer(run_config):
    from omegaconf import OmegaConf

    from entropy_verl.main import selection
    from entropy_verl.tools.compare import BUDGET, SEED_KEYS, planned_runs

    plan = planned_runs(["grpo", "nsr"], [1, 2], BUDGET, 5, "/o")
    # seeds outer: interrupted after three runs, both methods have seed 1
    assert [(run.seed, run.name, run.run_dir) for run in plan] == [
        (1, "grpo", "/o/grpo/seed1"),
        (1, "nsr", "/o/nsr/seed1"),
        (2, "grpo", "/o/grpo/seed2"),
        (2, "nsr", "/o/nsr/seed2"),
    ]
    assert plan[3].overrides == [
        *BUDGET,
        *(f"{key}=2" for key in SEED_KEYS),
        "trainer.total_training_steps=5",
        "entropy_verl.run_dir=/o/nsr/seed2",
    ]
    (default,) = planned_runs(["grpo"], [None], [], 5, "/o")  # no --seeds: today's run, the config's seeds
    assert default.run_dir == "/o/grpo" and not any("seed" in o for o in default.overrides)
    assert planned_runs(["grpo"], [7], [], 5, "/o")[0].run_dir == "/o/grpo"  # one seed keeps the one-run layout

    config = run_config(selection("nsr"), *plan[3].overrides)
    found = {}

    def walk(node, path):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{path}{key}.")
            elif key == "seed" or str(key).endswith("_seed"):
                found[f"{path}{key}"] = value

    walk(OmegaConf.to_container(config, resolve=True), "")
    assert found == dict.fromkeys(SEED_KEYS, 2)  # SEED_KEYS is every seed the run config has


def write_seed_run(path, entropy_end, reward_end, start=0.6, step_s=2.0):
    """A 3-step run's metrics.jsonl as verl's file logger writes it: validated at step 3 (pass@1, pass@4)."""
    path.mkdir(parents=True)
    write_jsonl(
        path / "metrics.jsonl",
        [
            (1, {"actor/entropy": start, "critic/score/mean": 0.2, "timing_s/step": 9.0}),
            (2, {"actor/entropy": entropy_end, "critic/score/mean": reward_end, "timing_s/step": step_s}),
            (
                3,
                {
                    "actor/entropy": entropy_end,
                    "critic/score/mean": reward_end,
                    "timing_s/step": step_s,
                    "val/pass@1": reward_end,
                    "val/pass@4": 0.8,
                },
            ),
        ],
    )


SEEDED = {  # per method, per seed: (entropy at the end, reward at the end)
    "grpo": [(0.40, 0.3), (0.42, 0.4), (0.44, 0.5)],
    "nsr": [(0.55, 0.35), (0.57, 0.45), (0.59, 0.25)],  # entropy +0.15 (holds), reward -0.05 (within noise)
    "clip_b": [(0.30, 0.60), (0.32, 0.61), (0.34, 0.62)],  # entropy -0.10 (holds), reward +0.21 (within noise)
}


def test_seed_tables_give_mean_interval_and_the_verdict_against_grpo(tmp_path, capsys):
    import json

    from entropy_verl.tools.compare import main

    for name, values in SEEDED.items():
        for seed, (entropy, reward) in zip((1, 2, 3), values, strict=True):
            write_seed_run(tmp_path / name / f"seed{seed}", entropy, reward, start=0.6 + seed / 100)
    results = main(
        ["--from-runs", "--methods", *SEEDED, "--seeds", "1", "2", "3", "--window", "2", "--out", str(tmp_path)]
    )
    assert [(r["method"], r["seed"]) for r in results] == [(name, seed) for name in SEEDED for seed in (1, 2, 3)]
    md = (tmp_path / "results.md").read_text()
    assert "3 steps each, seeds 1, 2, 3" in md
    lines = md.splitlines()
    values, versus = (lines.index(line) for line in lines if line.startswith("| method"))
    assert lines[values] == (
        "| method | seeds | entropy, step 1 | entropy, last 2 | end / start | reward, last 2 | pass@1 | pass@4 "
        "| s / step |"
    )
    # grpo's end entropy 0.42 +- t_{0.975,2} 0.02 / sqrt(3) = 0.0497; the start 0.62 +- 0.0248, the same for all
    assert lines[values + 2].startswith("| grpo | 3 | 0.620 ± 0.025 | 0.420 ± 0.050 | ")
    assert lines[values + 2].endswith(" | 0.800 ± 0.000 | 2.00 ± 0.00 |")
    assert lines[versus].startswith("| method − grpo | interval | entropy, step 1 | ")
    nsr, clip_b = lines[versus + 2].split(" | "), lines[versus + 3].split(" | ")
    # paired over seeds 1-3 (each method ran every seed): per-seed differences, t_{0.975,2} = 4.3027 x sd / sqrt(3).
    # nsr: start and end entropy differ by exactly 0 and +0.15 at every seed (half-width 0, so +0.150 holds); reward
    # +0.05, +0.05, -0.25: mean -0.05, sd 0.1732, half-width 0.430
    assert nsr[0] == "| nsr" and nsr[1] == "paired (3 seeds)"
    assert nsr[2] == "+0.000 ± 0.000 within noise" and nsr[3] == "+0.150 ± 0.000 holds"
    assert nsr[5] == "-0.050 ± 0.430 within noise"  # reward: the seeds' spread swamps the difference
    # clip_b: entropy -0.10 at every seed; reward +0.30, +0.21, +0.12: mean 0.21, sd 0.09, half-width 0.224
    assert clip_b[3] == "-0.100 ± 0.000 holds" and clip_b[5] == "+0.210 ± 0.224 within noise"
    assert "**holds**: the interval excludes 0" in md
    summaries = json.loads((tmp_path / "results.json").read_text())["summaries"]
    assert summaries["nsr"]["vs_grpo"]["entropy_end"]["holds"] is True and summaries["nsr"]["seeds"] == [1, 2, 3]
    assert summaries["nsr"]["vs_grpo"]["reward_end"]["holds"] is False and "vs_grpo" not in summaries["grpo"]
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # interrupted after nsr's second seed: read as far as it got, the seeds recorded in results.json
    for name in ("grpo", "nsr", "clip_b"):
        for seed in (2, 3) if name == "clip_b" else (3,):
            for file in (tmp_path / name / f"seed{seed}").iterdir():
                file.unlink()
            (tmp_path / name / f"seed{seed}").rmdir()
    capsys.readouterr()
    results = main(["--from-runs", "--methods", *SEEDED, "--window", "2", "--out", str(tmp_path)])
    assert "not run, left out: ['clip_b/seed2', 'grpo/seed3', 'nsr/seed3', 'clip_b/seed3']" in capsys.readouterr().out
    assert len(results) == 5
    md = (tmp_path / "results.md").read_text()
    assert "| clip_b | 1 | 0.610 | 0.300 | " in md  # one seed: the value alone
    # one seed in common with grpo's two: Welch over the runs, and no verdict with a single run
    assert "| clip_b | Welch (1 vs 2 runs) | -0.005 | -0.110 | " in md


def test_seeds_and_seed_overrides_do_not_mix(tmp_path):
    from entropy_verl.tools.compare import main

    with pytest.raises(SystemExit):
        main(["--from-runs", "--methods", "grpo", "--seeds", "1", "2", "--out", str(tmp_path), "--", "data.seed=3"])
    with pytest.raises(SystemExit):
        main(["--from-runs", "--methods", "grpo", "--seeds", "1", "1", "--out", str(tmp_path)])


def test_single_seed_from_runs_keeps_todays_layout_and_table(tmp_path, capsys):
    from entropy_verl.tools.compare import main

    for name, values in SEEDED.items():
        write_seed_run(tmp_path / name, *values[0])
    metrics = tmp_path / "clip_b" / "metrics.jsonl"
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:2]))  # killed during step 3
    main(["--from-runs", "--methods", *SEEDED, "--window", "2", "--out", str(tmp_path)])
    assert "shorter than 3 steps (a run cut short?), in the table all the same: ['clip_b (2 steps)']" in (
        capsys.readouterr().out
    )
    table = [line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in table] == ["method", *SEEDED]
    assert table[2] == "| nsr | 0.600 | 0.550 | 0.92 | +0.150 | 0.350 | 0.350 | 0.800 | 2.00 | 1.00x |"


def test_plot_mean_and_band_over_seeds_is_the_tables_t_interval():
    import math

    from entropy_verl.tools.plot import across_seeds

    # steps 1-2: three seeds, sd 1: half-width t_{0.975,2} 4.302653 / sqrt(3) = 2.48414; step 3: two seeds (the third
    # stopped after step 2), 3 and 5, sd sqrt(2): t_{0.975,1} 12.7062 sqrt(2) / sqrt(2); step 4: one seed, no band
    steps, mean, low, high = across_seeds(
        [([1, 2, 3, 4], [1.0, 2.0, 3.0, 7.0]), ([1, 2, 3], [2.0, 3.0, 5.0]), ([1, 2], [3.0, 4.0])]
    )
    assert steps == [1, 2, 3, 4] and mean == pytest.approx([2.0, 3.0, 4.0, 7.0], rel=1e-12)
    assert low[:3] == pytest.approx([2.0 - 2.48414, 3.0 - 2.48414, 4.0 - 12.7062], abs=1e-4)
    assert high[:3] == pytest.approx([2.0 + 2.48414, 3.0 + 2.48414, 4.0 + 12.7062], abs=1e-4)
    assert math.isnan(low[3]) and math.isnan(high[3])


# ---- --runs: runs made elsewhere (a sweep on a cluster), paired where they share seeds ------------------------------


def write_sweep_run(root, index, method, seed, entropy_end, reward_end, step_s, saved=("config", "overrides")):
    """A run as ``launch/sweep --name zoo method=grpo,clip_b data.seed=range(1,4)`` leaves it under
    ``$ENTROPY_VERL_RUN_ROOT``: ``<root>/entropy_verl/zoo-<i>-method_<m>-seed_<k>/`` (project, then the run name
    ``launch/sweep`` gives ``trainer.experiment_name``), Hydra's composed config and overrides in ``.hydra/`` (those
    in ``saved``), verl's file logger's ``metrics.jsonl``."""
    name = f"zoo-{index}-method_{method}-seed_{seed}"
    run = root / "entropy_verl" / name
    write_seed_run(run, entropy_end, reward_end, start=0.6 + seed / 100, step_s=step_s)
    (run / ".hydra").mkdir()
    if "config" in saved:
        (run / ".hydra" / "config.yaml").write_text(
            f"data:\n  train_batch_size: 16\n  seed: {seed}\n  shuffle: true\n"
            f"trainer:\n  project_name: entropy_verl\n  experiment_name: {name}\n"
        )
    if "overrides" in saved:
        (run / ".hydra" / "overrides.yaml").write_text(
            f"- trainer.experiment_name={name}\n- hardware=cluster_gpu\n- method={method}\n- data.seed={seed}\n"
        )
    return run


SWEEP = {  # per method, seeds 1, 2, 3: (entropy at the end, reward at the end, s / step); the seed moves both alike
    "grpo": [(0.40, 0.30, 2.0), (0.50, 0.40, 2.2), (0.60, 0.50, 2.4)],
    "clip_b": [(0.45, 0.32, 2.1), (0.56, 0.38, 2.3), (0.64, 0.54, 2.5)],
}


def write_sweep(root):
    """The 6 runs of the sweep, indexed as ``launch/sweep`` indexes them (methods outer, seeds inner)."""
    for i, (method, seed) in enumerate((m, s) for m in SWEEP for s in (1, 2, 3)):
        write_sweep_run(root, i, method, seed, *SWEEP[method][seed - 1])


def test_runs_from_a_sweeps_directories_are_compared_paired_over_their_3_seeds(tmp_path, capsys):
    import json

    from entropy_verl.tools.compare import main

    write_sweep(tmp_path / "runs")
    (tmp_path / "runs" / "entropy_verl" / "zoo-9-method_grpo-seed_4").mkdir()  # a job that failed before step 1
    out = tmp_path / "compare"
    sweep = tmp_path / "runs" / "entropy_verl"
    results = main(
        ["--runs", f"grpo={sweep}/zoo-*-method_grpo-*", f"clip_b={sweep}/zoo-*-method_clip_b-*"]
        + ["--window", "2", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert "not a run directory (no metrics.jsonl), left out: [" in printed and "zoo-9-method_grpo-seed_4" in printed
    assert [(r["method"], r["seed"]) for r in results] == [(m, s) for m in SWEEP for s in (1, 2, 3)]
    md = (out / "results.md").read_text()
    assert md.startswith("# Method comparison from run directories\n\nUp to 3 steps; each run's seed from its saved")
    assert f"- grpo: seed 1 `{sweep}/zoo-0-method_grpo-seed_1`, seed 2 `{sweep}/zoo-1-method_grpo-seed_2`, " in md
    lines = md.splitlines()
    values, versus = (lines.index(line) for line in lines if line.startswith("| method"))
    # grpo's end entropy 0.4, 0.5, 0.6: 0.5 +- t_{0.975,2} 4.302653 * 0.1 / sqrt(3) = 0.248
    assert lines[values + 2].startswith("| grpo | 3 | 0.620 ± 0.025 | 0.500 ± 0.248 | ")
    assert lines[versus] == (
        "| method − grpo | interval | entropy, step 1 | entropy, last 2 | end / start | reward, last 2 | pass@1 "
        "| pass@4 | s / step |"
    )
    # per-seed differences: entropy 0.05, 0.06, 0.04: mean 0.05, sd 0.01, half 4.302653 * 0.01 / sqrt(3) = 0.0248
    # (Welch over the same runs: +-0.22, within noise); reward 0.02, -0.02, 0.04: mean 1/75, sd^2 = 0.0028 / 3,
    # half 4.302653 sqrt(7) / 150 = 0.0759; s / step 0.1 at every seed: no spread; the start is the same per seed
    clip_b = lines[versus + 2].split(" | ")
    assert clip_b[:4] == ["| clip_b", "paired (3 seeds)", "+0.000 ± 0.000 within noise", "+0.050 ± 0.025 holds"]
    assert clip_b[5] == "+0.013 ± 0.076 within noise" and clip_b[8] == "+0.10 ± 0.00 holds |"
    assert "**paired (n seeds)**: the method and grpo both ran these n seeds" in md
    assert md[md.index("| method − grpo") :] in printed  # the table printed is the one written
    summary = json.loads((out / "results.json").read_text())
    clip_b_summary = summary["summaries"]["clip_b"]
    assert clip_b_summary["interval"] == {"kind": "paired", "seeds": [1, 2, 3]}
    assert clip_b_summary["vs_grpo"]["entropy_end"]["diff"] == pytest.approx(0.05, abs=1e-12)
    assert clip_b_summary["vs_grpo"]["entropy_end"]["half"] == pytest.approx(4.302653 * 0.01 / 3**0.5, rel=1e-5)
    assert clip_b_summary["vs_grpo"]["reward_end"]["half"] == pytest.approx(4.302653 * 7**0.5 / 150, rel=1e-5)
    assert summary["baseline"] == "grpo" and [run["seed"] for run in summary["runs"]["clip_b"]] == [1, 2, 3]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # another baseline: the same pairs, the other way round
    main(
        ["--runs", f"grpo={sweep}/zoo-*-method_grpo-*", f"clip_b={sweep}/*clip_b*", "--baseline", "clip_b"]
        + ["--window", "2", "--out", str(out)]
    )
    assert (
        "| grpo | paired (3 seeds) | +0.000 ± 0.000 within noise | -0.050 ± 0.025 holds | " in capsys.readouterr().out
    )


def test_runs_without_two_shared_seeds_fall_back_to_welch_and_seeds_come_from_the_saved_overrides(tmp_path, capsys):
    import json

    from entropy_verl.tools.compare import main, run_seed

    write_sweep(tmp_path / "runs")
    # nsr from another sweep at seeds 3, 4 (its config lost: the seed from its saved overrides) and a local run
    # without .hydra (seed unknown): one seed shared with grpo, too few to pair
    later = tmp_path / "later"
    write_sweep_run(later, 0, "nsr", 3, 0.70, 0.35, 2.0)
    write_sweep_run(later, 1, "nsr", 4, 0.80, 0.45, 2.0, saved=("overrides",))
    write_seed_run(later / "entropy_verl" / "nsr", 0.90, 0.25)
    assert run_seed(str(later / "entropy_verl" / "zoo-1-method_nsr-seed_4")) == 4
    assert run_seed(str(later / "entropy_verl" / "nsr")) is None
    sweep = tmp_path / "runs" / "entropy_verl"
    main(
        ["--runs", f"grpo={sweep}/*-method_grpo-*", f"nsr={later}/entropy_verl/*", f"clip_b={sweep}/*clip_b-seed_[12]"]
        + ["--window", "2", "--out", str(tmp_path / "compare")]
    )
    md = (tmp_path / "compare" / "results.md").read_text()
    assert f"- nsr: seed 3 `{later}/entropy_verl/zoo-0-method_nsr-seed_3`, seed 4 " in md
    assert f"seed ? `{later}/entropy_verl/nsr`" in md
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in md.splitlines() if " | " in line}
    # Welch, equal spreads (sd 0.1 on both sides): dof 4, half 2.776445 sqrt(2 * 0.01 / 3) = 0.2267
    assert rows["nsr"][1] == "Welch (3 vs 3 runs)" and rows["nsr"][3] == "+0.300 ± 0.227 holds"
    # clip_b at seeds 1 and 2 only: paired on those two (0.05, 0.06: half t_{0.975,1} 12.7062 * 0.00707 / 1.414)
    assert rows["clip_b"][1:4] == ["paired (2 seeds)", "+0.000 ± 0.000 within noise", "+0.055 ± 0.064 within noise"]
    summaries = json.loads((tmp_path / "compare" / "results.json").read_text())["summaries"]
    assert summaries["nsr"]["interval"] == {"kind": "welch", "runs": [3, 3]}
    assert summaries["nsr"]["seeds"] == [3, 4, None]


def test_runs_refuses_a_name_without_dir_a_glob_matching_nothing_and_two_runs_at_one_seed(tmp_path, capsys):
    from entropy_verl.tools.compare import main

    write_sweep(tmp_path)
    sweep = tmp_path / "entropy_verl"
    for argv, message in (
        (["--runs", f"{sweep}/zoo-0-method_grpo-seed_1"], "expected NAME=DIR"),
        (["--runs", f"grpo={sweep}/zoo-*-method_grpo-*", f"nsr={sweep}/*nsr*"], f"{sweep}/*nsr*' matches no run"),
        (["--runs", f"grpo={sweep}/*"], "--runs grpo: more than one run at seed [1, 2, 3]"),
        (["--runs", f"grpo={sweep}/*grpo*", "--baseline", "nsr"], "--baseline nsr: not one of the rows ['grpo']"),
        (["--runs", f"grpo={sweep}/*grpo*", "--seeds", "1", "2"], "--runs reads finished runs: --seeds do not apply"),
    ):
        with pytest.raises(SystemExit):
            main([*argv, "--out", str(tmp_path / "out")])
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "out").exists()
