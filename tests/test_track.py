"""Tracking sinks (harness.track): MLflow read back with MLflow's own client, TensorBoard with its own event
reader, a plugin's sink, and failures that never lose a result and are sent later with `tunebench track`."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.results.io import read_results
from harness.results.table import load_results
from tests.helpers import ROOT, registrations_undone, write_task

STRATEGIES = "none,full,lora"


@pytest.fixture
def tracked_env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _task(tmp_path, tiny_bert_dir):
    return write_task(tmp_path, "tracked", tiny_bert_dir)


def _runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tunebench")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def test_a_tracked_matrix_reads_back_with_mlflows_own_client(tmp_path, tiny_bert_dir, tracked_env):
    import mlflow

    run_dir = tmp_path / "reports" / "run"
    args = ["run", str(_task(tmp_path, tiny_bert_dir)), "--strategies", STRATEGIES, "--out", str(run_dir)]
    assert main([*args, "--track", "mlflow", "--track-weights"]) == 0
    uri = f"sqlite:///{tmp_path / 'reports' / 'mlflow.db'}"  # embedded: beside the run folder
    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs(experiment_names=["tunebench"])
    parents = frame[frame["tags.role"] == "matrix"]
    cells = frame[frame["tags.role"] != "matrix"]
    assert len(parents) == 1 and len(cells) == 3
    assert set(cells["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}
    table = load_results(run_dir).set_index("cell_id")
    by_id = {r["cell_id"]: r for r in read_results(run_dir)}
    client, _ = _runs(uri)
    for _, run in cells.iterrows():
        row = table.loc[run["tags.tunebench.cell_id"]]
        assert run["params.strategy"] == row["strategy"] and run["params.seed"] == str(row["seed"])
        assert run["params.training.learning_rate"] == str(row["training.learning_rate"])
        assert run["tags.status"] == "ok" and run["tags.search_role"] == "final"
        for name in ("primary_value", "peak_memory_bytes", "trainable_params", "metric.accuracy", "metric.macro_f1"):
            assert run[f"metrics.{name}"] == pytest.approx(float(row[name])), name
        measured = [c for c in table.columns if isinstance(row[c], float) and math.isfinite(row[c])]
        logged = {c.removeprefix("metrics.") for c in cells.columns if c.startswith("metrics.") and run[c] == run[c]}
        settings = ("training.", "option.", "model.", "data.")
        assert {c for c in measured if not c.startswith(settings) and c != "seed"} <= logged
        history = client.get_metric_history(run["run_id"], "train_loss")
        training = by_id[row.name]["training"] or {}
        steps = training.get("steps", 0)
        assert [m.step for m in history] == list(range(1, steps + 1))  # one point per training step
        artifacts = {a.path for a in client.list_artifacts(run["run_id"])}
        assert f"{row.name}.json" in artifacts and "items.jsonl.gz" in artifacts
        assert ("weights" in artifacts) == (row["strategy"] != "none")  # --track-weights: the trained cells' weights
    assert {a.path for a in client.list_artifacts(parents.iloc[0]["run_id"])} == {"report.html"}
    record = json.loads((run_dir / "tracking.json").read_text())
    assert record["mlflow"]["failed"] == {} and len(record["mlflow"]["logged"]) == 3


def test_tensorboards_event_reader_reads_a_cells_scalars(tmp_path, tiny_bert_dir, tracked_env):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    task = _task(tmp_path, tiny_bert_dir)
    assert main(["run", str(task), "--strategies", "lora", "--out", str(run_dir), "--track", "tensorboard"]) == 0
    (result,) = read_results(run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard" / "tracked" / "lora" / "seed0"))
    events.Reload()
    tags = events.Tags()["scalars"]
    losses = events.Scalars("train_loss")
    assert [e.step for e in losses] == list(range(1, result["training"]["steps"] + 1))
    assert [e.value for e in losses] == pytest.approx(result["training"]["loss_curve"], rel=1e-6)
    rates = [e.value for e in events.Scalars("learning_rate")]
    assert rates == pytest.approx(result["training"]["lr_curve"], rel=1e-6) and len(rates) == len(losses)
    assert "figures/train_tokens_per_s" in tags and "figures/peak_memory_bytes" in tags
    (primary,) = events.Scalars("figures/primary_value")
    assert primary.value == pytest.approx(result["primary_value"]) and primary.step == result["training"]["steps"]


@pytest.fixture
def _plugin_registries():
    with registrations_undone("tests.toy_plugins"):
        yield


@pytest.mark.usefixtures("_plugin_registries")
def test_a_plugin_sink_receives_every_cell_without_touching_the_runner(tmp_path, tiny_bert_dir, tracked_env):
    run_dir, out = tmp_path / "run", tmp_path / "sent.jsonl"
    task = _task(tmp_path, tiny_bert_dir)
    argv = ["run", str(task), "--strategies", "none,lora", "--out", str(run_dir)]
    assert main([*argv, "--plugin", "tests.toy_plugins", "--track", f"toy_jsonl={out}"]) == 0
    sent = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["event"] for s in sent] == ["start", "cell", "cell", "finish"]
    assert {s["cell_id"] for s in sent[1:3]} == {r["cell_id"] for r in read_results(run_dir)}
    assert sent[-1]["report"] == str(run_dir / "report.html")


def test_an_unknown_sink_is_one_line_exit_2(tmp_path, tiny_bert_dir, capsys):
    task = _task(tmp_path, tiny_bert_dir)
    assert main(["run", str(task), "--out", str(tmp_path / "run"), "--track", "mlfow"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "unknown tracking sink 'mlfow'" in line and "did you mean 'mlflow'" in line
    assert not (tmp_path / "run").exists()


def test_the_publisher_retries_then_records_what_it_could_not_send(tmp_path):
    from harness.track import SINKS, Publisher, Sink

    calls, waits = [], []

    @SINKS.register("test_flaky")
    class Flaky(Sink):
        def log_cell(self, result, cell_dir):
            calls.append(result["cell_id"])
            if result["cell_id"] == "bad" or len(calls) < 3:
                raise ConnectionError("server down\nsecond line")

    try:
        publisher = Publisher(tmp_path, ["test_flaky"], sleep=waits.append)
        publisher.cell_written({"cell_id": "good"})  # fails twice, then succeeds
        publisher.cell_written({"cell_id": "bad"})  # fails three times
    finally:
        SINKS._items.pop("test_flaky")
    assert calls == ["good"] * 3 + ["bad"] * 3 and waits == [0.5, 2.0, 0.5, 2.0]
    record = json.loads((tmp_path / "tracking.json").read_text())["test_flaky"]
    assert record.pop("seconds") >= 0 and record == {
        "logged": ["good"],
        "failed": {"bad": "ConnectionError: server down"},
    }


# ---------------------------------------------------------------- a real tracking server


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _server(store: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(  # its own process group: the server's workers die with it
        command, cwd=store, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    _stop(server)
    raise AssertionError("mlflow server did not start within 90 s")


def _stop(server: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def test_a_server_that_dies_mid_run_loses_nothing_and_track_fills_the_store(tmp_path, tiny_bert_dir, tracked_env):
    store, port = tmp_path / "store", _free_port()
    store.mkdir()
    uri = f"http://127.0.0.1:{port}"
    server = _server(store, port)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "harness.cli", "run", str(_task(tmp_path, tiny_bert_dir))]
    command += ["--strategies", STRATEGIES, "--out", str(run_dir), "--track", f"mlflow={uri}"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        record = run_dir / "tracking.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            record.is_file() and json.loads(record.read_text() or "{}").get(f"mlflow={uri}", {}).get("logged")
        ):
            time.sleep(0.2)
        _stop(server)  # the first cell reached the server; the rest will not
        _, err = run.communicate(timeout=300)
    finally:
        _stop(server)
        run.kill()
    assert run.returncode == 0, err  # as it would without tracking
    results = read_results(run_dir)
    assert len(results) == 3 and all(r["status"] == "ok" for r in results)
    entry = json.loads(record.read_text())[f"mlflow={uri}"]
    assert len(entry["logged"]) >= 1 and entry["failed"] and "could not log" in err
    server = _server(store, port)  # back up: send the run folder
    try:
        assert main(["track", str(run_dir), "--to", f"mlflow={uri}"]) == 0
        _, runs = _runs(uri)
        assert main(["track", str(run_dir), "--to", f"mlflow={uri}"]) == 0  # again: nothing doubled
        _, again = _runs(uri)
    finally:
        _stop(server)
    cells = sorted(r.data.tags["tunebench.cell_id"] for r in runs if "tunebench.cell_id" in r.data.tags)
    assert cells == sorted(r["cell_id"] for r in results)
    assert len(again) == len(runs) == 4  # the matrix's parent run and one per cell
    assert json.loads(record.read_text())[f"mlflow={uri}"]["failed"] == {}


# ---------------------------------------------------------------- history and the store as baseline


def _history_runs(tmp_path) -> list[Path]:
    """Five runs of two (task, strategy) pairs, three seeds each, a commit and a day apart; the fourth drops
    sentiment/lora's accuracy by 0.2 (a regression), the fifth recovers."""
    from tests.report_fixtures import GiB, cell_result, write_run

    folders = []
    for number, shift in enumerate((0.0, 0.005, -0.005, -0.20, 0.0)):
        results = []
        for strategy, base in (("lora", 0.85), ("full", 0.90)):
            for seed in range(3):
                value = base + (shift if strategy == "lora" else 0.0) + 0.005 * seed
                result = cell_result(
                    "sentiment", strategy, seed, value, memory=GiB * (1 + 0.01 * number), tokens_per_s=900.0 + seed
                )
                result["provenance"] = {
                    **result["provenance"],
                    "git_commit": f"{number:02d}" + "a" * 38,
                    "git_branch": "main",
                }
                result["finished_at"] = f"2026-11-{10 + number:02d}T12:00:00+0000"
                results.append(result)
        folders.append(write_run(tmp_path / f"run{number}", results))
    return folders


def test_history_marks_the_regression_and_renders_in_chromium(tmp_path, capsys):
    from tests.chromium_page import CHROMIUM, DevToolsPage, png_pixels, screenshot_png

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    folders = _history_runs(tmp_path)
    out = tmp_path / "history.html"
    assert main(["history", *map(str, reversed(folders)), "--out", str(out)]) == 0  # any order: sorted by time
    assert "history of 5 run(s), 2 regression(s) flagged" in capsys.readouterr().err  # accuracy and macro-F1
    page = DevToolsPage(tmp_path / "profile")
    try:
        page.page("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        for domain in ("Page", "Network", "Runtime"):
            page.page(f"{domain}.enable")
        page.page("Page.navigate", url=out.resolve().as_uri())
        page.wait_for("Page.loadEventFired")
        requests = [e for e in page.events if e["method"] == "Network.requestWillBeSent"]
        errors = [e for e in page.events if e["method"] == "Runtime.exceptionThrown"]
        charts = page.evaluate(
            "Array.from(document.querySelectorAll('section.history')).map(s => [s.dataset.task + '/' + "
            "s.dataset.strategy, Array.from(s.querySelectorAll('figure')).map(f => [f.dataset.figure, "
            "f.querySelectorAll('circle.regression').length])])"
        )
        ring = page.evaluate("document.querySelector('circle.regression title').textContent")
        labels = page.evaluate(
            "Array.from(document.querySelectorAll('#runs tbody td:nth-child(2)')).map(t => t.textContent)"
        )
        png = screenshot_png(page, 1280, 900)
    finally:
        page.close()
    (tmp_path / "history.png").write_bytes(png)
    assert [e["params"]["request"]["url"] for e in requests] == [out.resolve().as_uri()] and errors == []
    width, height, _ = png_pixels(png)
    assert (width, height) == (1280, 900)
    figures = ["primary_value", "peak_memory_bytes", "train_tokens_per_s"]
    assert charts == [
        ["sentiment/full", [[f, 0] for f in figures]],
        ["sentiment/lora", [["primary_value", 1], ["peak_memory_bytes", 0], ["train_tokens_per_s", 0]]],
    ]
    assert ring.startswith("03aaaaaa: ") and "regression: " in ring
    assert labels == ["00aaaaaa", "01aaaaaa", "02aaaaaa", "03aaaaaa", "04aaaaaa"]


def test_compare_with_a_baseline_from_the_store_gates_as_on_the_folders(tmp_path, capsys):
    folders = _history_runs(tmp_path)
    earlier, current = folders[:3], folders[3]
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    for folder in earlier:
        assert main(["track", str(folder), "--to", f"mlflow={uri}"]) == 0
    assert (store / "mlartifacts").is_dir() and not (Path.cwd() / "mlruns").exists()  # artifacts beside the store
    capsys.readouterr()
    on_folders = main(["compare", *map(str, earlier), str(current)])
    expected = capsys.readouterr().out
    from_store = main(["compare", "--baseline-from", str(store), "--last", "3", str(current)])
    got = capsys.readouterr()
    assert on_folders == from_store == 1 and got.out == expected
    assert "rolling baseline: 3 runs pooled" in got.out and "REGRESSION" in got.out
    assert "baseline: 3 run(s) from" in got.err
    assert main(["compare", "--baseline-from", str(store), "--last", "1", str(current)]) == 1  # the newest alone
    assert main(["compare", "--baseline-from", str(store), "--branch", "dev", str(current)]) == 2  # none of dev


def test_a_suites_track_list_sends_its_cells_and_an_unknown_sink_names_the_key(tmp_path, tiny_bert_dir, tracked_env):
    from harness.config import ConfigError, load_matrix

    task = _task(tmp_path, tiny_bert_dir)
    suite = tmp_path / "suite.toml"
    suite.write_text(f'[suite]\nname = "s"\ntasks = ["{task.name}"]\nstrategies = ["none"]\ntrack = ["tensorboard"]\n')
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 0
    assert list((tmp_path / "run" / "tensorboard" / "tracked" / "none" / "seed0").glob("events.out.tfevents.*"))
    suite.write_text(suite.read_text().replace('"tensorboard"', '"tensorbord"'))
    with pytest.raises(ConfigError) as caught:
        load_matrix([suite])
    (problem,) = caught.value.problems
    assert problem.key == "suite.track" and "unknown tracking sink 'tensorbord'" in problem.message
