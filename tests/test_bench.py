"""``make bench`` at toy sizes: the results files exist and cover every registered loss method (no timing asserted)."""

import json

from entropy_verl import registry
from entropy_verl.bench import main


def test_bench_writes_a_row_per_registered_loss_method(tmp_path):
    main(
        [
            "--batch",
            "2",
            "--length",
            "16",
            "--vocab",
            "50",
            "--vocab-tokens",
            "16",
            "--chunk",
            "4",
            "--repeats",
            "1",
            "--loss-repeats",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    result = json.loads((tmp_path / "results.json").read_text())
    methods = {spec.name for spec in registry.specs(*registry.LOSS_KINDS)}
    assert len(methods) >= 11 and {row["method"] for row in result["losses"]} == {"vanilla (verl)", *methods}
    assert result["vocab_stats"]["vocab"] == 50 and (tmp_path / "results.md").read_text().startswith(
        "# entropy_verl benchmark"
    )
    assert result["diagnostics"]["metrics"] >= 12 and result["diagnostics"]["tokens"] > 0
