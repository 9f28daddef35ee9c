"""The agreement study's table (benchmarks/agreement.py), from written pick and full-path run folders."""

from __future__ import annotations

import json

from benchmarks.agreement import markdown, study_task
from tests.report_fixtures import GiB, cell_result, three_seed_results, write_run


def _pick_folder(run_dir, chosen: str, seconds: float) -> None:
    result = cell_result("sentiment", chosen, 0, 0.9, memory=GiB, tokens_per_s=100.0)
    result["timing"] = {"load_seconds": 1.0, "train_seconds": seconds - 3.0, "eval_seconds": 2.0}
    write_run(run_dir, [result])
    pairs = [{"strategy": chosen, "learning_rate": 1e-3, "pruned_after_steps": None}]
    (run_dir / "pick.json").write_text(json.dumps({"pick": chosen, "race": {"pairs": pairs}, "cost": {"ratio": 0.3}}))


def test_a_pick_within_noise_of_the_full_paths_best_agrees_and_the_cost_is_measured(tmp_path):
    """Full (0.91 over 3 seeds) is the full path's best; lora (0.90) ties with it, adapter (0.71) differs."""
    full = write_run(tmp_path / "full-sentiment", [r for r in three_seed_results() if r["task"] == "sentiment"])
    full_seconds = sum(
        sum(v for v in r["timing"].values() if v) for r in three_seed_results() if r["task"] == "sentiment"
    )
    rows = []
    for chosen in ("full", "lora", "adapter"):
        out = tmp_path / chosen
        out.mkdir()
        (out / "full-sentiment").symlink_to(full, target_is_directory=True)
        _pick_folder(out / "pick-sentiment", chosen, 40.0)
        rows.append(study_task(tmp_path / "sentiment.toml", out, table_only=True))
    assert [(r["full_path_best"], r["pick"], r["how"], r["agrees"]) for r in rows] == [
        ("full", "full", "same strategy", True),
        ("full", "lora", "within noise", True),
        ("full", "adapter", "differs", False),
    ]
    assert rows[0]["pick_cell_seconds"] == 40.0 and rows[0]["full_path_cell_seconds"] == full_seconds
    assert rows[0]["ratio"] == 40.0 / full_seconds and rows[0]["pick_rate"] == 1e-3
    table = markdown(rows)
    assert "| sentiment | full (0.910) | lora | within noise | 40 |" in table
    assert f"2 of 3 tasks agree (67%); median cost ratio {40.0 / full_seconds:.2f}x" in table


def test_where_no_row_of_the_full_path_learned_its_best_is_the_highest_mean_marked_so(tmp_path):
    """Medical on 32 rows: no strategy beat the commonest answer; the full path's best is then its highest
    mean among all rows, as `recommend` picks, and the table says that none learned."""
    results = [r for r in three_seed_results() if r["task"] == "sentiment"]
    for result in results:
        if result["strategy"] != "none":
            result["learning"] = {"learned": False, "reasons": [{"code": "below_reference", "message": "m"}]}
    full = write_run(tmp_path / "full-sentiment", results)
    _pick_folder(tmp_path / "pick-sentiment", "full", 40.0)
    row = study_task(tmp_path / "sentiment.toml", tmp_path, table_only=True)
    assert full.exists() and row["full_path_best"] == "full" and row["full_path_rows"]["full"]["learned"] is False
    assert row["how"] == "same strategy" and "| sentiment | full (0.910, none learned) | full |" in markdown([row])
