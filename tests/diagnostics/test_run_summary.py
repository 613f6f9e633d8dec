import json

from entropy_verl.diagnostics.run_summary import format_summary, summarize
from entropy_verl.run_state import load_metrics


def test_summary_window_means(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with open(path, "w") as f:
        for step in range(1, 31):
            f.write(json.dumps({"step": step, "data": {"actor/entropy": float(step), "critic/score/mean": 0.5}}) + "\n")
    rows = load_metrics(str(tmp_path))
    phases = summarize(rows, window=10)
    assert [(p.name, p.first_step, p.last_step) for p in phases] == [
        ("start", 1, 10),
        ("middle", 11, 20),
        ("end", 21, 30),
    ]
    assert [p.values["actor/entropy"] for p in phases] == [5.5, 15.5, 25.5]
    assert "end" in format_summary(phases) and "25.500" in format_summary(phases)


def test_summary_of_a_short_run_and_missing_keys(tmp_path):
    rows = [{"step": 1, "actor/entropy": 1.0}, {"step": 2, "actor/entropy": 3.0}]
    phases = summarize(rows, window=10)
    assert phases[0].values["actor/entropy"] == 1.0 and phases[-1].values["actor/entropy"] == 3.0
    assert phases[0].values["critic/score/mean"] != phases[0].values["critic/score/mean"]  # NaN, not a crash


def test_summary_reads_the_token_mean_entropy_where_every_step_logs_it():
    rows = [{"step": t, "actor/entropy": 0.3, "entropy/token_mean": 0.6, "critic/score/mean": 0.5} for t in (1, 2, 3)]
    phases = summarize(rows)
    assert list(phases[0].values) == ["entropy/token_mean", "critic/score/mean"]
    assert phases[-1].values["entropy/token_mean"] == 0.6 and "entropy/token_mean" in format_summary(phases)
