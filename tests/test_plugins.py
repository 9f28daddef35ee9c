"""Plugins without a suite: --plugin on every command and the tunebench.plugins entry point; what they
register flows through a run to every table without an edit outside the plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import harness
from harness.cli import main
from harness.metrics import METRICS
from tests.helpers import ROOT, registrations_undone, write_task

PRIMARY = '[metric]\nnames = ["accuracy", "macro_f1"]\n'


@pytest.fixture(autouse=True)
def _registries_as_before():
    """What a test's plugins register is gone afterwards, so other tests see the built-ins only."""
    with registrations_undone("tests.toy_plugins", "toy_ep_metrics"):
        yield


def toy_task(tmp_path, tiny_bert_dir, name="toy"):
    path = write_task(tmp_path, name, tiny_bert_dir)
    path.write_text(path.read_text().replace(PRIMARY, '[metric]\nnames = ["toy_agreement", "accuracy"]\n'))
    return path


def test_a_plugin_metric_and_tracker_reach_every_table(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the cell processes import tests.toy_plugins
    task = toy_task(tmp_path, tiny_bert_dir)
    run_dir = tmp_path / "run"
    assert (
        main(["run", str(task), "--strategies", "none,full", "--out", str(run_dir), "--plugin", "tests.toy_plugins"])
        == 0
    )
    cells = harness.load_results(run_dir)
    assert (cells["primary_metric"] == "toy_agreement").all()
    assert list(cells["metric.toy_agreement"]) == pytest.approx(list(100 * cells["metric.accuracy"]))
    assert dict(zip(cells["strategy"], cells["toy_phases"])) == {"none": 2, "full": 3}  # load, (train,) eval
    aggregates = harness.load_aggregates(run_dir).set_index("strategy")
    assert aggregates.loc["full", "toy_phases_mean"] == 3 and "metric.toy_agreement_mean" in aggregates
    capsys.readouterr()
    for fmt, needles in (
        ("csv", ("metric.toy_agreement", "toy_phases_mean")),
        ("json", ("metric.toy_agreement", "toy_phases_mean")),
        ("md", ("toy_agreement", "toy_phases (phases)")),
        ("latex", ("toy\\_agreement", "toy\\_phases (phases)")),
    ):
        assert main(["report", str(run_dir), "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert all(needle in out for needle in needles), (fmt, out[:2000])
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "toy_agreement (primary)" in html and "toy_phases (phases)" in html
    items = json.loads((run_dir / "cells").glob("*.json").__next__().read_text())["items"]
    assert items["measure"] == "correct" and items["metric"] == "toy_agreement"


def test_without_the_plugin_the_metric_is_unknown_and_a_missing_plugin_is_one_line(tmp_path, tiny_bert_dir, capsys):
    task = toy_task(tmp_path, tiny_bert_dir)
    validate = [sys.executable, "-m", "harness.cli", "validate", str(task)]  # a fresh process: no plugin loaded
    without = subprocess.run(validate, cwd=ROOT, capture_output=True, text=True)
    assert without.returncode == 2 and "metric.names[0]: unknown metric 'toy_agreement'" in without.stderr
    with_plugin = subprocess.run(validate + ["--plugin", "tests.toy_plugins"], cwd=ROOT, capture_output=True, text=True)
    assert with_plugin.returncode == 0, with_plugin.stderr
    assert main(["list", str(task), "--plugin", "tests.no_such_plugin"]) == 2
    assert capsys.readouterr().err.strip() == (
        "tunebench: cannot import plugin tests.no_such_plugin: No module named 'tests.no_such_plugin'"
    )


def test_an_installed_entry_point_is_loaded_by_every_command(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    site = tmp_path / "site"
    (site / "toy_ep-0.1.dist-info").mkdir(parents=True)
    (site / "toy_ep-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ep\nVersion: 0.1\n")
    (site / "toy_ep-0.1.dist-info" / "entry_points.txt").write_text("[tunebench.plugins]\ntoy = toy_ep_metrics\n")
    (site / "toy_ep_metrics.py").write_text(
        textwrap.dedent("""\
        from harness.metrics import register_metric

        @register_metric("toy_entry_point", needs=("labels",))
        def toy(predictions, references):
            return 0.5
        """)
    )
    monkeypatch.syspath_prepend(str(site))
    task = write_task(tmp_path, "ep", tiny_bert_dir)
    task.write_text(task.read_text().replace(PRIMARY, '[metric]\nnames = ["accuracy", "toy_entry_point"]\n'))
    assert main(["validate", str(task)]) == 0, capsys.readouterr().err
    assert "toy_entry_point" in METRICS and METRICS.get("toy_entry_point").needs == {"labels"}
