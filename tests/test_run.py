"""End to end through the CLI on a tiny BERT: cells run in their own processes and leave results."""

from __future__ import annotations

import io
import json
import subprocess
import textwrap

import pytest

import harness
from harness.cli import main
from harness.config import load_matrix
from harness.results import COLUMNS, read_results
from harness.run.executor import run_matrix
from tests.helpers import write_task


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_bert_dir):
    folder = tmp_path_factory.mktemp("e2e")
    task = write_task(folder, "tiny-sentiment", tiny_bert_dir)
    run_dir = folder / "run"
    code = main(["run", str(task), "--out", str(run_dir), "--price-per-hour", "2.5"])
    return code, run_dir, task


def test_every_strategy_runs_ok(finished_run):
    code, run_dir, _ = finished_run
    results = read_results(run_dir)
    assert code == 0
    assert sorted(r["strategy"] for r in results) == ["adapter", "frozen-lower", "full", "lora", "none"]
    assert {r["status"] for r in results} == {"ok"}
    for result in results:
        assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
        assert result["memory"]["peak_bytes"] > 50 * 2**20
        assert set(result["memory"]["phases"]) == (
            {"load", "train", "eval"} if result["strategy"] != "none" else {"load", "eval"}
        )
        assert result["throughput"]["eval_tokens_per_s"] > 0
        assert result["provenance"]["packages"]["torch"]
        if result["strategy"] != "none":
            assert result["throughput"]["train_measured_steps"] == 3  # 4 steps, 1 warm-up
            assert result["throughput"]["train_tokens_per_s"] > 0
            assert result["weights"]["bytes"] > 0
        spent = result["cost"]
        assert spent["device_hours"] > 0 and spent["cost"] == pytest.approx(2.5 * spent["device_hours"])
        assert spent["energy_kwh"] is None or spent["energy_kwh"] > 0  # a counter's reading, or none at all
        assert (spent["energy_kwh"] is None) == spent["energy_source"].startswith("not measurable here")
    page = (run_dir / "report.html").read_text()
    assert "vs cost per cell" in page and "Device time: " in page and "at 2.5 per device-hour" in page
    assert "| cost (price units) |" in (run_dir / "results.md").read_text()


def test_saved_weights_are_standard(finished_run):
    _, run_dir, _ = finished_run
    from safetensors.torch import load_file

    by_strategy = {r["strategy"]: r for r in read_results(run_dir)}
    lora_dir = run_dir / "cells" / by_strategy["lora"]["cell_id"] / "weights"
    assert (lora_dir / "adapter_config.json").is_file() and (lora_dir / "adapter_model.safetensors").is_file()
    adapter = load_file(run_dir / "cells" / by_strategy["adapter"]["cell_id"] / "weights" / "trainable.safetensors")
    assert sum(t.numel() for t in adapter.values()) == by_strategy["adapter"]["params"]["trainable"]


def test_exports_and_load_results_have_the_columns(finished_run, capsys):
    _, run_dir, _ = finished_run
    frame = harness.load_results(run_dir)
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(frame) == 5 and (frame["status"] == "ok").all()
    assert frame.loc[frame.strategy == "none", "trainable_params"].item() == 0
    for fmt in ("csv", "md", "json"):
        assert main(["report", str(run_dir), "--format", fmt]) == 0
        text = capsys.readouterr().out
        assert "train_tokens_per_s" in text and "tiny-sentiment" in text
    assert main(["report", str(run_dir), "--format", "md"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| task | scenario | strategy |") and len(table) == 2 + 5  # notes follow


def test_strategy_options_and_changed_settings_are_columns_and_shown(finished_run, capsys):
    _, run_dir, _ = finished_run
    frame = harness.load_results(run_dir).set_index("strategy")
    assert frame.loc["lora", "option.r"] == 8 and frame.loc["adapter", "option.bottleneck"] == 64
    assert frame.loc["full", "training.learning_rate"] == 1e-3  # the task sets it; the default is 1e-4
    assert "training.batch_size" not in frame  # left at its default by every cell: no column
    assert main(["report", str(run_dir), "--format", "csv"]) == 0
    assert "option.r" in capsys.readouterr().out.splitlines()[0]
    settings = harness.load_aggregates(run_dir).set_index("strategy")["settings"]
    assert settings["lora"].startswith("alpha=16, bias=none, dropout=0, r=8")
    assert settings["full"] == "epochs=1, learning_rate=0.001, measure_warmup_steps=1"
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert '<th scope="col">settings</th>' in html and settings["lora"] in html


def test_resume_skips_finished_cells(finished_run):
    _, run_dir, task = finished_run
    matrix = load_matrix([task])
    stream = io.StringIO()
    outcomes = run_matrix(matrix, run_dir, stream=stream, runner=lambda *a: pytest.fail("re-ran a finished cell"))
    assert all(o.skipped for o in outcomes) and "5 of 5 cells already done" in stream.getvalue()


def test_same_seed_gives_identical_metrics(finished_run, tmp_path):
    _, run_dir, task = finished_run
    assert main(["run", str(task), "--strategies", "lora", "--out", str(tmp_path / "again")]) == 0
    again = read_results(tmp_path / "again")[0]
    first = next(r for r in read_results(run_dir) if r["strategy"] == "lora")
    assert again["cell_id"] == first["cell_id"]
    assert again["metrics"] == first["metrics"]
    assert again["training"]["final_loss"] == first["training"]["final_loss"]


def test_failing_cells_are_recorded_and_the_rest_finish(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    from tests.helpers import ROOT

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the cell processes import tests.fault_plugins
    write_task(tmp_path, "t", tiny_bert_dir)
    suite = tmp_path / "suite.toml"
    suite.write_text(
        textwrap.dedent("""\
        [suite]
        name = "faults"
        tasks = ["t.toml"]
        strategies = ["fault-raise", "none", "fault-kill", "fault-hog", "lora"]
        plugins = ["tests.fault_plugins"]
        cell_memory_limit_mb = 1500
        """)
    )
    run_dir = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(run_dir)]) == 1
    by_strategy = {r["strategy"]: r for r in read_results(run_dir)}
    assert by_strategy["none"]["status"] == by_strategy["lora"]["status"] == "ok"
    raised = by_strategy["fault-raise"]
    assert raised["status"] == "failed" and raised["error"]["type"] == "RuntimeError"
    assert any("injected failure in apply" in line for line in raised["error"]["traceback_tail"])
    killed = by_strategy["fault-kill"]
    assert killed["status"] == "killed" and "SIGKILL" in killed["error"]["message"]
    hog = by_strategy["fault-hog"]
    assert hog["status"] == "oom" and "exceeded the cell limit of 1500 MiB" in hog["error"]["message"]
    progress = capsys.readouterr().err
    assert "[5/5]" in progress and "ETA" in progress
    frame = harness.load_results(run_dir)
    assert set(frame.status) == {"ok", "failed", "killed", "oom"}


def test_results_are_written_atomically(tmp_path):
    from harness.results.io import write_result

    with pytest.raises(ValueError):
        write_result(tmp_path, {"cell_id": "x", "status": "bogus"})
    write_result(tmp_path, {"cell_id": "x", "status": "ok", "task": "t", "strategy": "s", "seed": 0})
    with pytest.raises(ValueError):  # NaN is not JSON: refuse rather than write a file others cannot read
        write_result(tmp_path, {"cell_id": "x", "status": "ok", "value": float("nan")})
    assert json.loads((tmp_path / "cells" / "x.json").read_text())["status"] == "ok"
    assert [p.name for p in (tmp_path / "cells").iterdir()] == ["x.json"]


def test_a_changed_config_sets_earlier_results_aside(finished_run, tmp_path):
    import shutil

    _, run_dir, task = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    changed = tmp_path / "tiny-sentiment.toml"
    changed.write_text(task.read_text().replace("learning_rate = 1e-3", "learning_rate = 2e-3"))
    matrix = load_matrix([changed], strategies=("lora",))

    def fake_runner(cell, run_dir, matrix):  # writes what a finished cell would
        from harness.results.io import write_result
        from harness.run.cell import cell_header

        write_result(run_dir, {**cell_header(cell), "status": "ok", "primary_value": 0.5})
        return "ok"

    stream = io.StringIO()
    run_matrix(matrix, copy, stream=stream, runner=fake_runner)
    assert "moved 1 result(s) of an earlier config" in stream.getvalue()
    assert len(list((copy / "stale").glob("*.json"))) == 1
    lora = [r for r in read_results(copy) if r["strategy"] == "lora"]
    assert [r["cell_id"] for r in lora] == [matrix.cells[0].cell_id]


def test_three_seeds_give_aggregates_in_exports(finished_run, tmp_path, capsys):
    _, _, task = finished_run
    run_dir = tmp_path / "seeds"
    assert main(["run", str(task), "--strategies", "none", "--seeds", "3", "--out", str(run_dir)]) == 0
    assert sorted(r["seed"] for r in read_results(run_dir)) == [0, 1, 2]
    aggregates = harness.load_aggregates(run_dir)
    row = aggregates.iloc[0]
    assert row["n"] == 3 and {"primary_value_mean", "primary_value_std", "primary_value_ci95"} <= set(
        aggregates.columns
    )
    assert main(["report", str(run_dir), "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert len(exported["cells"]) == 3 and exported["aggregates"][0]["n"] == 3
    assert main(["report", str(run_dir), "--format", "csv"]) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.splitlines()[0].startswith("row_type") and csv_text.count("\naggregate,") == 1


def test_unreadable_result_file_is_a_one_line_error(finished_run, tmp_path, capsys):
    import shutil

    _, run_dir, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    broken = next((copy / "cells").glob("*.json"))
    broken.write_text("{not json")
    assert main(["report", str(copy), "--format", "md"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tunebench: {broken}: not a JSON result file") and "\n" not in err


def test_gguf_models_are_converted_once_before_the_matrix(tmp_path):
    """De-quantisation happens before any cell (so no cell's load phase pays for it), once per file."""
    from types import SimpleNamespace

    from harness.models import _seal, gguf_cache_folder, prepare_models

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "m.gguf").write_bytes(b"GGUF")
    task = SimpleNamespace(model=SimpleNamespace(source=str(folder), gguf_file="m.gguf"), path=tmp_path / "t.toml")
    plain = SimpleNamespace(model=SimpleNamespace(source=str(folder), gguf_file=None), path=tmp_path / "u.toml")
    calls, stream = [], io.StringIO()

    def convert(source, gguf_file):
        calls.append((source, gguf_file))
        target = gguf_cache_folder(source, gguf_file)
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        _seal(target)  # a finished entry carries its completion marker

    prepare_models([task, plain, task], stream, convert)
    assert calls == [(str(folder), "m.gguf")] and "de-quantising once into" in stream.getvalue()
    prepare_models([task], stream, convert)  # cached now: nothing to do
    assert len(calls) == 1

    def broken(source, gguf_file):
        raise subprocess.CalledProcessError(1, "convert", stderr="Traceback ...\nValueError: not a GGUF file\n")

    (folder / "n.gguf").write_bytes(b"????")
    other = SimpleNamespace(model=SimpleNamespace(source=str(folder), gguf_file="n.gguf"), path=tmp_path / "t.toml")
    prepare_models([other], stream, broken)
    assert (
        "could not prepare n.gguf (ValueError: not a GGUF file); its cells will convert it themselves"
        in stream.getvalue()
    )
