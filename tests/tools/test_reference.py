"""The settings reference (``docs/reference.md``) is generated from the registry and the field docstrings, and must
be what ``python -m entropy_verl.tools.reference`` writes now."""

from __future__ import annotations

import difflib
import os

import pytest

from entropy_verl.tools import reference


def test_docs_reference_is_up_to_date():
    generated = reference.generate()
    with open(reference.DEFAULT_OUT, encoding="utf-8") as f:
        committed = f.read()
    diff = "".join(
        list(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True), "committed", "generated"))[
            :40
        ]
    )
    assert committed == generated, (
        f"docs/reference.md is out of date: regenerate it with `{reference.COMMAND}` (make reference)\n{diff}"
    )


def settings_rows(text: str) -> dict[str, list[str]]:
    """{setting: its table row's cells} of one printed entry."""
    rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| `")]
    return {cells[0].strip(" `"): [c.strip(" `") for c in cells[1:]] for cells in rows}


def test_one_method_printout_has_its_settings_with_their_defaults(capsys):
    assert reference.main(["clip_b"]) == 0
    printed = capsys.readouterr().out
    rows = settings_rows(printed)
    assert rows["mu"][:2] == ["float \\| [[step, value], ...]", "2.5"] and rows["scope"][1] == "step"  # schedulable
    assert "entropy_verl.methods.clip_b" in printed and "arXiv:2602.03392" in printed


def test_a_method_file_prints_the_entries_it_configures_and_a_block_its_settings(capsys):
    assert reference.main(["pos_adv_reweight_guided"]) == 0
    printed = capsys.readouterr().out
    assert "### `lambda_schedule`" in printed and "### `pos_adv_reweight`" in printed
    assert reference.main(["safety"]) == 0
    assert settings_rows(capsys.readouterr().out)["max_nonfinite_steps"][:2] == ["int", "3"]


def test_an_unknown_name_errors_with_the_closest_registered_one(capsys):
    assert reference.main(["clip_bb"]) == 2
    assert "did you mean 'clip_b'?" in capsys.readouterr().err
    with pytest.raises(KeyError, match="did you mean 'steer'"):
        reference.describe("stear")


def test_check_fails_on_a_stale_file_and_passes_once_written(tmp_path, capsys):
    out = os.path.join(tmp_path, "reference.md")
    with open(out, "w", encoding="utf-8") as f:
        f.write("# stale\n")
    assert reference.main(["--check", "--out", out]) == 1
    assert reference.COMMAND in capsys.readouterr().err
    assert reference.main(["--out", out]) == 0 and reference.main(["--check", "--out", out]) == 0
