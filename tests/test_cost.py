"""Cost per cell: device-hours, their price, and energy where a counter exists (never a made-up 0 kWh)."""

from __future__ import annotations

import pytest
import torch

from harness.cli import main
from harness.config import load_matrix
from harness.measure import cost
from harness.measure.cost import Cost
from harness.measure.tracker import TrackerContext
from harness.report.view import cost_note
from tests.helpers import write_task


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _rapl(root, joules: list[float], wrap_uj: int = 10**9) -> None:
    for i, value in enumerate(joules):
        package = root / f"intel-rapl:{i}"
        package.mkdir(parents=True, exist_ok=True)
        (package / "energy_uj").write_text(str(int(value * 1e6) % (wrap_uj + 1)))
        (package / "max_energy_range_uj").write_text(str(wrap_uj))
    (root / "intel-rapl:0" / "intel-rapl:0:0").mkdir(exist_ok=True)  # a sub-domain: not counted twice


def test_device_hours_price_and_energy_from_rapl_counters(tmp_path, monkeypatch):
    monkeypatch.setattr(cost, "RAPL", tmp_path)
    _rapl(tmp_path, [990.0, 5.0], wrap_uj=1000 * 10**6)  # package 0 wraps at 1000 J
    clock = Clock()
    tracker = Cost(TrackerContext(torch.device("cpu"), price_per_device_hour=3.0), clock=clock)
    with tracker.phase("train"):
        clock.now += 1800.0
        _rapl(tmp_path, [1010.0, 25.0], wrap_uj=1000 * 10**6)  # +20 J across the wrap, +20 J
    summary = tracker.summary()
    assert summary["device_hours"] == pytest.approx(0.5)
    assert summary["cost"] == pytest.approx(1.5) and summary["cost_note"] is None
    assert summary["energy_kwh"] == pytest.approx(40.0 / 3.6e6)
    assert summary["energy_source"].startswith("RAPL package counters (2 package(s)")


def test_no_counter_means_not_measurable_and_no_price_means_no_cost(tmp_path, monkeypatch):
    monkeypatch.setattr(cost, "RAPL", tmp_path / "missing")
    clock = Clock()
    tracker = Cost(TrackerContext(torch.device("cpu")), clock=clock)
    with tracker.phase("eval"):
        clock.now += 36.0
    summary = tracker.summary()
    assert summary["device_hours"] == pytest.approx(0.01)
    assert summary["cost"] is None and "price_per_device_hour" in summary["cost_note"]
    assert summary["energy_kwh"] is None  # never 0 kWh
    assert summary["energy_source"].startswith("not measurable here")


def test_report_line_says_cost_and_why_energy_is_missing():
    results = [
        {"task": "t", "status": "ok", "cost": {**c, "energy_kwh": None, "energy_source": "not measurable here: x"}}
        for c in (
            {"device_hours": 0.1, "price_per_device_hour": 2.0, "cost": 0.2, "cost_note": None},
            {"device_hours": 0.3, "price_per_device_hour": 2.0, "cost": 0.6, "cost_note": None},
        )
    ]
    line = cost_note("t", results)
    assert line == (
        "Device time: 0.4 device-hours over 2 cell(s); cost 0.8 at 2 per device-hour; energy: not measurable here: x."
    )


def test_suite_price_reaches_the_matrix_and_a_negative_one_is_named(tmp_path, tiny_bert_dir, capsys):
    write_task(tmp_path, "a", tiny_bert_dir)
    suite = tmp_path / "s.toml"
    body = '[suite]\nname = "s"\ntasks = ["a.toml"]\nstrategies = ["none"]\nprice_per_device_hour = {}\n'
    suite.write_text(body.format("2.5"))
    assert load_matrix([suite]).price_per_device_hour == 2.5
    suite.write_text(body.format("-1"))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s.toml" in err[0] and "price_per_device_hour" in err[0]


def test_price_on_the_command_line_must_be_a_number(tmp_path, tiny_bert_dir, capsys):
    task = write_task(tmp_path, "a", tiny_bert_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(task), "--price-per-hour", "cheap", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "--price-per-hour: must be a finite number >= 0, got 'cheap'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_cost_column_only_where_cells_have_a_cost():
    import pandas as pd

    from harness.figures import shown_figures

    priced = pd.DataFrame({"cost_mean": [0.2, None], "train_mfu_mean": [None, None]})
    unpriced = pd.DataFrame({"cost_mean": [None, None], "train_mfu_mean": [1.0, None]})
    assert [f.name for f in shown_figures(priced)] == ["cost"]
    assert [f.name for f in shown_figures(unpriced)] == ["train_mfu"]
    assert {"cost", "train_mfu"} <= {f.name for f in shown_figures()}
