"""The zoo study (``tools/study.py``, ``tools/study_report.py``): the plan (seeds outer, each seed's shared start
validation first, GRPO first, the entropy-target rule), resumability (what counts as finished), the diagnostics'
claims and the law across methods by hand, and the page from synthetic run directories. Real runs of the study's
configuration are the demo's (tests/e2e)."""

from __future__ import annotations

import json
import math
import shutil
import time

import pytest

from entropy_verl.diagnostics.token_stats import change_noise_share
from entropy_verl.run_state import load_metrics
from entropy_verl.tools import study, study_report
from entropy_verl.tools.parallel_runs import Job, run_parallel

STEPS = 12


def write_run(directory, entropies, rewards, passes: dict[int, float] | None, extra=None, val_step=None):
    """A run directory as verl's file logger leaves it: one row per step, the validation on the last step."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (h, r) in enumerate(zip(entropies, rewards, strict=True)):
        data = {"actor/entropy": h, "critic/score/mean": r, "timing_s/step": 2.0, **((extra or {}).get(i + 1, {}))}
        rows.append({"step": i + 1, "data": data})
    if passes is not None:
        step = len(entropies) if val_step is None else val_step
        val = {f"val/pass@{k}": v for k, v in passes.items()} | {"val/distinct_correct": 1.5}
        if rows and step == len(entropies):
            rows[-1]["data"].update(val)
        else:
            rows.append({"step": step, "data": val})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_plan_is_seeds_outer_with_the_shared_start_and_grpo_first(tmp_path):
    jobs = study.planned(["grpo", "entropic", "nsr"], [1, 2], 100, str(tmp_path), target=0.43)
    assert [job.label for job in jobs] == [
        "start s1", "grpo s1", "entropic s1", "nsr s1", "start s2", "grpo s2", "entropic s2", "nsr s2",
    ]  # fmt: skip
    start, grpo = jobs[0], jobs[1]
    assert "trainer.val_only=true" in start.overrides and start.steps == 0
    assert "trainer.val_before_train=false" in grpo.overrides and "trainer.test_freq=100" in grpo.overrides
    assert grpo.run_dir == str(tmp_path / "grpo" / "seed1")
    assert "data.seed=1" in grpo.overrides and "actor_rollout_ref.rollout.seed=1" in grpo.overrides


def test_every_entry_composes_with_paper_values_and_the_targets_rule():
    """Each method's config composes as the study runs it; the entropy targets are the rule's, the rest the
    method file's (paper) values."""
    from entropy_verl.main import compose_run

    target = study.target_for({"metrics": {"entropy": 0.5736}})
    assert target == 0.43  # 3/4 of the initial policy's own entropy, rounded
    assert len({e.name for e in study.ENTRIES}) == len(study.ENTRIES) and study.ENTRIES[0].name == study.BASELINE
    for entry in study.ENTRIES:
        config = compose_run(list(study.method_job(entry, 1, 100, "/tmp/study", target).overrides))
        assert config.trainer.total_training_steps == 100 and config.data.train_batch_size == 32
        assert config.actor_rollout_ref.rollout.n == 8 and config.actor_rollout_ref.rollout.val_kwargs.n == 32
        if entry.name == "entropic":
            pi = config.entropy_verl.controllers.pi
            assert (pi.target_entropy, pi.target_temperature, pi.kp, pi.ki) == (0.43, 1.0, 1.0, 0.01)
            assert config.entropy_verl.methods.entropic.prob_threshold == 0.95
        if entry.name == "adaptive_entropy":
            assert config.entropy_verl.controllers.adaptive_entropy.target_entropy == 0.43


def test_a_run_is_recorded_and_finished_once_its_last_steps_validation_is_logged(tmp_path):
    """``keep`` records a run only once it is finished; the record (not the run directory, gone on a fresh checkout)
    is what counts, holds what the page reads and nothing else, and gives the page the same numbers."""
    out, records = tmp_path / "out", str(tmp_path / "records")
    job = study.method_job(study.BY_NAME["nsr"], 1, 3, str(out), target=0.43)
    assert not study.keep(job, records) and not study.finished(job, records)  # nothing yet
    run = out / "nsr" / "seed1"
    write_run(run, [0.6, 0.5], [0.2, 0.3], None)
    assert not study.keep(job, records) and not study.finished(job, records)  # killed at step 2
    write_run(run, [0.6, 0.5, 0.4], [0.2, 0.3, 0.3], None)
    assert not study.keep(job, records) and not study.finished(job, records)  # its end validation is missing
    write_run(run, [0.6, 0.5, 0.4], [0.2, 0.3, 0.3], {1: 0.3, 32: 0.8}, extra={2: {"actor/pg_loss": 0.1}})
    (run / "checkpoints").mkdir()
    assert study.keep(job, records) and study.finished(job, records)
    assert not (run / "checkpoints").exists()
    record = tmp_path / "records" / "nsr" / "seed1.jsonl"
    kept = study_report.load_record(str(record))
    assert all("actor/pg_loss" not in row for row in kept) and kept[-1]["val/pass@32"] == 0.8
    full = study_report.run_record(load_metrics(str(run)), seed=1, steps=3)
    same = study_report.run_record(kept, seed=1, steps=3)
    assert json.dumps(same, sort_keys=True) == json.dumps(full, sort_keys=True)  # (NaN diagnostics print alike)
    shutil.rmtree(out)  # a fresh checkout: the record alone says it is finished
    assert study.finished(job, records)
    start = study.start_job(1, str(out))
    assert not study.finished(start, records)
    write_run(out / "start" / "seed1", [], [], {1: 0.2, 32: 0.9}, val_step=0)
    assert study.keep(start, records) and study.finished(start, records)


def test_no_run_starts_after_the_time_given(tmp_path):
    own = ("actor_rollout_ref.model.path=/m", "data.train_files=/t.parquet", "data.val_files=/v.parquet")
    jobs = [Job(f"run {i}", own, str(tmp_path / str(i)), 1) for i in (1, 2)]
    assert run_parallel(jobs, start_until=time.time() - 1) == jobs
    assert not any((tmp_path / str(i)).exists() for i in (1, 2))


def test_the_diagnostic_claims_per_step_and_over_windows_by_hand():
    """31 steps whose entropy changes by d_t; the logged prediction is 2 d_t and the covariance 5 d_t (so -Cov is
    -5 d_t): per step and over the 3 ten-step windows, r = +1 for the prediction and -1 for -Cov. Steps logged
    without them (a run with diagnostics off) give no correlation, but the noise share of the changes."""
    changes = [0.01 * ((3 * t) % 7 - 3) for t in range(30)]
    entropies = [0.6 + sum(changes[:t]) for t in range(31)]
    train = [
        {"actor/entropy": h, "entropy/predicted_change": 2 * d, "entropy/cov_logp_adv": 5 * d}
        for h, d in zip(entropies, [*changes, 0.0], strict=True)
    ]
    claims = study_report.diagnostic_claims(train)
    assert claims["predicted_step"] == pytest.approx(1.0) and claims["predicted_window"] == pytest.approx(1.0)
    assert claims["neg_cov_step"] == pytest.approx(-1.0) and claims["neg_cov_window"] == pytest.approx(-1.0)
    noise = change_noise_share(changes)  # from the entropies alone, so also without the diagnostics
    assert [claims["noise_step"], claims["noise_window"]] == pytest.approx([noise["step"], noise["window"]])
    bare = study_report.diagnostic_claims([{"actor/entropy": h} for h in entropies])
    assert all(math.isnan(v) for k, v in bare.items() if not k.startswith("noise"))
    assert bare["noise_step"] == pytest.approx(noise["step"])


def test_the_law_across_methods_finds_the_method_off_the_curve():
    """Three methods on R = -0.2 exp(H) + 0.8 up to seed noise (+-0.02), one 0.1 above it at every seed."""
    noise = (0.02, -0.02, 0.0)

    def records(entropies, offset=0.0):
        return [
            {"entropy_end": h, "pass@1": -0.2 * math.exp(h) + 0.8 + offset + e}
            for h, e in zip(entropies, noise, strict=True)
        ]

    runs = {
        "grpo": records([0.30, 0.32, 0.31]),
        "nsr": records([0.55, 0.50, 0.60]),
        "entropic": records([0.44, 0.46, 0.45]),
        "top_entropy": records([0.40, 0.41, 0.39], offset=0.1),
    }
    law = study_report.law_across_methods(runs)
    assert law["fit"].a > 0 and law["fit"].points == 12
    assert [name for name, r in law["residuals"].items() if r["off"]] == ["top_entropy"]
    assert law["residuals"]["top_entropy"]["mean"] > 0.05


def test_the_page_is_written_from_the_runs_and_redrawn_in_place(tmp_path):
    """Synthetic runs of GRPO and NSR at 3 seeds (NSR keeps entropy and pass@32 higher), the starts; the section
    lands between its markers, with the tables, the verdicts, the figures and the diagnostics; redrawing replaces it
    and keeps the hand-written text around it."""
    out = tmp_path / "study"
    for seed in (1, 2, 3):
        write_run(out / "start" / f"seed{seed}", [], [], {1: 0.2, 8: 0.7, 32: 0.95}, val_step=0)
        for name, end_h, p32 in (("grpo", 0.3, 0.75), ("nsr", 0.55, 0.85)):
            entropies = [0.6 - (0.6 - end_h) * i / (STEPS - 1) + 0.01 * ((i * seed) % 3) for i in range(STEPS)]
            extra = {
                i + 1: {"entropy/predicted_change": -0.01 * (i % 4), "entropy/cov_logp_adv": 0.002 * (i % 5)}
                for i in range(STEPS)
            }
            passes = {1: 0.35, 8: 0.6, 32: p32 + 0.01 * seed}
            write_run(out / name / f"seed{seed}", entropies, [0.3] * STEPS, passes, extra)
    records = str(tmp_path / "records")
    assert all(study.keep(job, records) for job in study.planned(["grpo", "nsr"], [1, 2, 3], STEPS, str(out), 0.43))
    initial = {
        "digest": "0123abcd",
        "versions": {"torch": "2.13.0+cpu"},
        "metrics": {"entropy": 0.574, "sampled_acc": 0.27},
    }
    (tmp_path / "records" / "embedded.json").write_text(json.dumps(initial))
    page = tmp_path / "results.md"
    page.write_text("# Measurements\n\nhand-written\n")
    figures = tmp_path / "figures"
    study_report.write_report(records, ["grpo", "nsr"], [1, 2, 3], STEPS, page=str(page), figures=str(figures))
    text = page.read_text()
    assert text.startswith("# Measurements\n\nhand-written\n") and text.count(study_report.BEGIN) == 1
    assert "Runs finished: **6 of 6**" in text and "digest `0123abcd` (torch 2.13.0+cpu;" in text
    assert "Entropy targets: 0.75 x the initial policy's entropy 0.574 (its build's own measurement) = **0.43**" in text
    assert "| nsr | paired (3 seeds) |" in text
    assert "correct answers: nsr (pass@32 +0.100)" in text  # NSR's pass@32 holds (the same +0.1 at each seed)
    assert "change entropy at the end: nsr (+0.148)" in text  # last-10 means: 0.577 vs 0.430
    assert "chance alone makes about 0.3 of 6" in text
    assert "| every run | 6 |" in text
    assert {p.name for p in figures.iterdir()} == {"entropy.png", "pass_at_k.png", "entropy_vs_pass.png"}
    page.write_text(text + "\nmore hand-written text\n")
    study_report.write_report(records, ["grpo", "nsr"], [1, 2, 3], STEPS, page=str(page), figures=str(figures))
    again = page.read_text()
    assert again.count(study_report.BEGIN) == 1 and again.endswith("\nmore hand-written text\n")


def test_a_run_record_reads_the_token_mean_entropy_where_logged():
    """Dr. GRPO's verl actor/entropy is length-normalised (0.45 here), the logged token mean 0.6: the record takes the
    token mean; a run from before entropy/token_mean was logged falls back to actor/entropy."""
    val = {"step": 3, "val/pass@1": 0.3, "val/pass@32": 0.8}
    rows = [{"step": t, "actor/entropy": 0.45, "entropy/token_mean": 0.6, "critic/score/mean": 0.2} for t in (1, 2, 3)]
    record = study_report.run_record([*rows, val], seed=1, steps=3)
    assert record["entropy_start"] == record["entropy_end"] == 0.6 and record["entropy"] == [0.6] * 3
    older = [{k: v for k, v in row.items() if k != "entropy/token_mean"} for row in rows]
    assert study_report.run_record([*older, val], seed=1, steps=3)["entropy_end"] == 0.45


def test_a_chunk_on_another_build_of_the_embedded_default_stops_before_any_run(small_build, tmp_path):
    """The first chunk records the initial policy's digest; the same build passes; a build whose weights differ (as
    another transformers' initialisation gives) stops the study, naming both digests; the page names the build."""
    from safetensors.torch import load_file, save_file

    from entropy_verl.embedded.build import content_digest

    records = str(tmp_path / "records")
    first = study.same_initial_policy(records, small_build)
    assert first["digest"] == content_digest(small_build.root) and study.same_initial_policy(records, small_build)
    assert f"digest `{first['digest']}`" in study_report.initial_policy(study_report.load_initial(records))
    other = tmp_path / "other"
    shutil.copytree(small_build.root, other)
    weights = other / "model" / "model.safetensors"
    tensors = {name: t.clone() for name, t in load_file(weights).items()}
    next(iter(tensors.values())).view(-1)[0] += 1e-3
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(SystemExit, match=f"not the one the recorded runs started from \\(digest {first['digest']}"):
        study.same_initial_policy(records, study.EmbeddedPaths(*[""] * 3, root=str(other)))


def test_the_records_are_not_ignored_by_git():
    """The records are the study's only durable copy: git must not ignore them (``runs/`` is ignored anywhere)."""
    import os
    import subprocess

    from conftest import REPO

    if not os.path.isdir(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    for name in ("grpo/seed1.jsonl", study_report.EMBEDDED, study_report.CHUNKS):
        path = os.path.join(study_report.RECORDS, name)
        found = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert found.returncode == 1, f"git ignores {path}"
