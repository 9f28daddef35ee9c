"""The result layout, defined once: round trips, migration of schema-1 folders, one-line errors."""

from __future__ import annotations

import json

import pytest

import harness
from harness.report.export import export
from harness.report.html import render_html
from harness.results.io import ResultFileError, read_result, write_result
from harness.results.schema import SCHEMA_VERSION, CellResult, ErrorInfo
from tests.helpers import ROOT

SCHEMA1_RUN = ROOT / "tests" / "fixtures" / "schema1_run"  # written by the release before schema 2


def test_a_schema_1_folder_from_the_previous_release_still_loads_and_renders():
    assert {json.loads(p.read_text())["schema_version"] for p in (SCHEMA1_RUN / "cells").glob("*.json")} == {1}
    cells = harness.load_results(SCHEMA1_RUN)
    assert len(cells) == 12 and set(cells["task"]) == {"sentiment", "spam"} and (cells["status"] == "ok").all()
    assert cells["peak_memory_bytes"].notna().all() and cells["train_tokens_per_s"].notna().sum() == 8
    aggregates = harness.load_aggregates(SCHEMA1_RUN)
    assert len(aggregates) == 6 and (aggregates["n"] == 2).all()
    assert aggregates["noise_test"].dropna().eq("95% intervals of the mean over seeds").all()  # no per-item files
    for fmt in ("csv", "md", "json", "latex"):
        assert "sentiment" in export(SCHEMA1_RUN, fmt)
    html = render_html(SCHEMA1_RUN)
    assert "Rotten Tomatoes" in html and "Confusion" in html  # data provenance, and the migrated details
    migrated = read_result(next((SCHEMA1_RUN / "cells").glob("*.json")))
    assert "confusion_matrix" in migrated["details"] and "confusion_matrix" not in migrated


def test_a_detail_cannot_overwrite_a_top_level_key(tmp_path):
    result = CellResult(
        cell_id="c1",
        task="t",
        strategy="full",
        seed=0,
        status="ok",
        primary_value=0.5,
        details={"status": "bogus", "examples": []},
        trackers={"timing": {"train_seconds": 1.0}},
    )
    write_result(tmp_path, result)
    back = read_result(tmp_path / "cells" / "c1.json")
    assert back["status"] == "ok" and back["details"]["status"] == "bogus" and back["timing"]["train_seconds"] == 1.0
    assert CellResult.from_dict(back) == result
    with pytest.raises(ValueError, match="trackers: key\\(s\\) status are result fields of their own"):
        CellResult(cell_id="c", task="t", strategy="s", seed=0, status="ok", trackers={"status": {}})


def test_bad_result_files_are_one_line_errors(tmp_path):
    folder = tmp_path / "cells"
    folder.mkdir()
    cases = {
        "future.json": {"schema_version": SCHEMA_VERSION + 1, "cell_id": "x"},
        "noseed.json": {"schema_version": SCHEMA_VERSION, "cell_id": "x", "task": "t", "strategy": "s", "status": "ok"},
        "badseed.json": {
            "schema_version": 1,
            "cell_id": "x",
            "task": "t",
            "strategy": "s",
            "seed": "0",
            "status": "ok",
        },
        "status.json": {"schema_version": 2, "cell_id": "x", "task": "t", "strategy": "s", "seed": 0, "status": "fine"},
        "list.json": [1, 2],
    }
    expected = {
        "future.json": f"schema_version: {SCHEMA_VERSION + 1}, this release reads 1 and {SCHEMA_VERSION}",
        "noseed.json": "seed: missing",
        "badseed.json": "seed: expected int, got str",
        "status.json": "status: must be one of ok, failed, killed, oom, timeout, got 'fine'",
        "list.json": "expected a JSON object, got list",
    }
    for name, payload in cases.items():
        (folder / name).write_text(json.dumps(payload))
        with pytest.raises(ResultFileError) as caught:
            read_result(folder / name)
        assert str(caught.value) == f"{folder / name}: {expected[name]}" and "\n" not in str(caught.value)


def test_failed_results_keep_their_error():
    result = CellResult(
        cell_id="c",
        task="t",
        strategy="s",
        seed=1,
        status="oom",
        error=ErrorInfo("MemoryError", "out of memory", ["line"]),
    )
    assert result.to_dict()["error"] == {"type": "MemoryError", "message": "out of memory", "traceback_tail": ["line"]}
    assert CellResult.from_dict(result.to_dict()) == result
