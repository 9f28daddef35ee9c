"""Comparison matrices in CI: shards, merge, the regression gate (`compare`), CI exports, the example workflow."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.config import load_matrix
from harness.results.io import read_results, write_result
from harness.results.items import write_items
from harness.results.table import load_aggregates
from harness.run.shard import parse_shard, shard
from tests.helpers import ROOT, write_task
from tests.report_fixtures import GiB, cell_result, three_seed_results

WORKFLOW = ROOT / "examples" / "github-actions" / "tunebench.yml"


# ---------------------------------------------------------------- shards and merge


def test_shards_are_disjoint_deterministic_and_cover_the_matrix(tmp_path, tiny_bert_dir):
    tasks = [write_task(tmp_path, f"t{i}", tiny_bert_dir) for i in range(2)]
    matrix = load_matrix(tasks, seeds=2)  # 2 tasks x 5 strategies x 2 seeds
    parts = [shard(matrix, i, 3) for i in (1, 2, 3)]
    ids = [{c.cell_id for c in part.cells} for part in parts]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[0] | ids[1] | ids[2] == {c.cell_id for c in matrix.cells}
    assert sorted(map(len, ids)) == [6, 7, 7]  # equal costs: balanced by count
    again = load_matrix(list(reversed(tasks)), seeds=2)  # the same config listed differently
    assert [{c.cell_id for c in shard(again, i, 3).cells} for i in (1, 2, 3)] == ids


def test_a_searched_pair_keeps_all_its_cells_in_one_shard(tmp_path, tiny_bert_dir):
    """Its trials choose the rate its final cells use: split across shards, each shard would search alone."""
    body = "\n[search]\nlearning_rates = [1e-4, 1e-3]\nvalidation = 0.25\n"
    matrix = load_matrix([write_task(tmp_path, "s", tiny_bert_dir, body=body)], seeds=3)
    owners: dict[str, set[int]] = {}
    for index in (1, 2, 3):
        for cell in shard(matrix, index, 3).cells:
            if cell.search:
                owners.setdefault(cell.strategy, set()).add(index)
    assert len(owners) == 5 and all(len(shards) == 1 for shards in owners.values())


def test_known_costs_balance_the_shards(tmp_path, tiny_bert_dir):
    matrix = load_matrix([write_task(tmp_path, "t", tiny_bert_dir)])
    costs = {("t", "full"): 90.0, ("t", "none"): 10.0, ("t", "frozen-lower"): 40.0, ("t", "adapter"): 30.0}
    costs[("t", "lora")] = 30.0
    loads = [sum(costs[(c.task.name, c.strategy)] for c in shard(matrix, i, 2, costs).cells) for i in (1, 2)]
    assert sorted(loads) == [100.0, 100.0]


def test_shard_costs_are_the_mean_phase_seconds_of_an_earlier_runs_ok_cells(tmp_path, tiny_bert_dir):
    """`--shard-costs RUN_DIR`: each (task, strategy) costs the mean load + train + eval seconds of its ok
    cells there (the fixture's cells take 1 + (30 + seed) + 2 s); failed cells do not count."""
    from harness.run.shard import cell_seconds

    earlier = [cell_result("t", "full", seed, 0.8, memory=GiB, tokens_per_s=100.0) for seed in (0, 1)]
    earlier += [cell_result("t", "lora", 0, 0.8, memory=GiB, tokens_per_s=100.0)]
    earlier += [cell_result("t", "adapter", 0, 0.8, memory=GiB, tokens_per_s=100.0, status="failed")]
    for result in earlier[:2]:
        result["timing"]["train_seconds"] *= 3  # full is slow: 1 + 90 + 2 and 1 + 93 + 2 s
    earlier[3]["timing"] = {"train_seconds": 500.0}  # a failed cell's time never counts, even when recorded
    quick = cell_result("t", "lora", 1, 0.8, memory=GiB, tokens_per_s=100.0)
    quick["timing"] = {"train_seconds": 0.5, "eval_seconds": 0.0, "load_seconds": 0.0}  # under a second counts
    untimed = cell_result("t", "lora", 2, 0.8, memory=GiB, tokens_per_s=100.0)
    untimed["timing"] = {}  # no time recorded: not a zero-second cell
    earlier += [quick, untimed]
    costs = cell_seconds(_run_folder(tmp_path / "earlier", earlier))
    assert costs == {("t", "full"): pytest.approx(94.5), ("t", "lora"): pytest.approx((33.0 + 0.5) / 2)}
    matrix = load_matrix([write_task(tmp_path, "t", tiny_bert_dir)], strategies=("none", "full", "lora", "adapter"))
    parts = [{c.strategy for c in shard(matrix, i, 2, costs).cells} for i in (1, 2)]
    # none and adapter, unmeasured, cost the mean measured one (55.6 s): 94.5 + 16.75 against 2 x 55.6
    assert sorted(map(sorted, parts)) == [["adapter", "none"], ["full", "lora"]]


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "2"])
def test_a_bad_shard_is_a_one_line_usage_error(text, capsys, tmp_path, tiny_bert_dir):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(text)
    task = write_task(tmp_path, "t", tiny_bert_dir)
    assert main(["run", str(task), "--shard", text, "--out", str(tmp_path / "r")]) == 2
    assert "--shard" in capsys.readouterr().err


def test_three_shards_merged_equal_one_unsharded_run(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = write_task(tmp_path, "sharded", tiny_bert_dir)
    common = ["run", str(task), "--strategies", "none,full,lora"]
    for i in (1, 2, 3):
        assert main([*common, "--shard", f"{i}/3", "--out", str(tmp_path / f"shard{i}")]) == 0
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    shards = [tmp_path / f"shard{i}" for i in (1, 2, 3)]
    assert main(["merge", str(tmp_path / "merged"), *map(str, shards)]) == 0

    def figures(folder):
        return {r["cell_id"]: (r["status"], r["metrics"]) for r in read_results(folder)}

    assert figures(tmp_path / "merged") == figures(tmp_path / "whole")
    assert sum(len(read_results(s)) for s in shards) == 3
    merged_items = sorted(p.relative_to(tmp_path / "merged") for p in (tmp_path / "merged").rglob("items.jsonl.gz"))
    assert merged_items == sorted(
        p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("items.jsonl.gz")
    )
    manifest = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert manifest["shards"] == ["1/3", "2/3", "3/3"]


def _run_folder(folder: Path, results: list[dict]) -> Path:
    for result in results:
        write_result(folder, result)
    return folder


def test_merge_refuses_a_cell_whose_results_differ(tmp_path, capsys):
    a = _run_folder(tmp_path / "a", [cell_result("t", "lora", 0, 0.80, memory=GiB, tokens_per_s=100.0)])
    b = _run_folder(tmp_path / "b", [cell_result("t", "lora", 0, 0.75, memory=GiB, tokens_per_s=100.0)])
    assert main(["merge", str(tmp_path / "out"), str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "t/lora/seed0) differs between" in err and "metrics, primary_value" in err
    assert not (tmp_path / "out" / "cells").exists()  # nothing is written before every check passes
    assert main(["merge", str(tmp_path / "forced"), str(a), str(b), "--force"]) == 2  # --force is about configs only
    assert "differs between" in capsys.readouterr().err and not (tmp_path / "forced" / "cells").exists()
    same = _run_folder(tmp_path / "c", [cell_result("t", "lora", 0, 0.80, memory=GiB, tokens_per_s=100.0)])
    assert main(["merge", str(tmp_path / "out"), str(a), str(same)]) == 0  # identical copies are fine


def test_a_conflict_names_keys_found_on_one_side_only_and_ignores_key_order():
    from harness.results.merge import _differing_keys

    a = {"metrics": {"f1": 0.8, "accuracy": 0.9}, "status": "ok"}
    b = {"metrics": {"accuracy": 0.9, "f1": 0.8}, "status": "ok", "error": "MemoryError"}
    assert _differing_keys(a, b) == ["error"] and _differing_keys(b, a) == ["error"]


def test_merge_refuses_folders_of_different_configs_unless_forced(tmp_path, capsys):
    a = _run_folder(tmp_path / "a", [cell_result("t", "lora", 0, 0.8, memory=GiB, tokens_per_s=1.0)])
    b = _run_folder(tmp_path / "b", [cell_result("t", "full", 0, 0.9, memory=GiB, tokens_per_s=1.0)])
    (a / "run.json").write_text(json.dumps({"matrix_digest": "aaaa", "shards": ["1/2"]}))
    (b / "run.json").write_text(json.dumps({"matrix_digest": "bbbb", "shards": ["2/2"]}))
    assert main(["merge", str(tmp_path / "out"), str(a), str(b)]) == 2
    assert "different configs" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "out"), str(a), str(b), "--force"]) == 0
    assert len(read_results(tmp_path / "out")) == 2


def _with_rate(result: dict, rate: float, cell_id: str, **extra) -> dict:
    config = {**result["config"], "task": {"training": {"learning_rate": rate, "epochs": 3}}}
    return {**result, "config": config, "cell_id": cell_id, **extra}


def test_merge_force_keeps_a_searched_rate_apart_from_the_default_rate(tmp_path, capsys):
    """A matrix and the search run of its adapter, merged with --force: two rows, never 'seeds 0,0'."""
    adapter = cell_result("t", "adapter", 0, 0.40, memory=GiB, tokens_per_s=1.0)
    main_run = _run_folder(
        tmp_path / "main",
        [_with_rate(adapter, 1e-3, "a" * 16), cell_result("t", "full", 0, 0.9, memory=GiB, tokens_per_s=1.0)],
    )
    searched = cell_result("t", "adapter", 0, 0.85, memory=GiB, tokens_per_s=1.0)
    search_run = _run_folder(
        tmp_path / "search",
        [
            _with_rate(searched, 3e-3, "b" * 16, search={"role": "final"}),
            _with_rate(searched, 1e-2, "c" * 16, search={"role": "trial"}),  # a trial: never a row
        ],
    )
    (main_run / "run.json").write_text(json.dumps({"matrix_digest": "aaaa"}))
    (search_run / "run.json").write_text(json.dumps({"matrix_digest": "bbbb"}))
    assert main(["merge", str(tmp_path / "out"), str(main_run), str(search_run), "--force"]) == 0
    err = capsys.readouterr().err
    assert (
        "t/adapter: cells of different configs kept apart as adapter-learning_rate=0.001, "
        "adapter-learning_rate=0.003" in err
    )
    rows = load_aggregates(tmp_path / "out").set_index("strategy")
    assert sorted(rows.index) == ["adapter-learning_rate=0.001", "adapter-learning_rate=0.003", "full"]
    assert (rows["n"] == 1).all() and (rows["seeds"] == "0").all()
    assert rows.loc["adapter-learning_rate=0.003", "primary_value_mean"] == pytest.approx(0.85)
    assert rows.loc["adapter-learning_rate=0.001", "primary_value_mean"] == pytest.approx(0.40)
    # one config per (task, strategy), as in an ordinary run: names untouched
    assert sorted(load_aggregates(main_run)["strategy"]) == ["adapter", "full"]


# ---------------------------------------------------------------- compare


def _shifted(results: list[dict], task: str, strategy: str, by: float) -> list[dict]:
    out = []
    for result in results:
        if result["task"] == task and result["strategy"] == strategy and result["status"] == "ok":
            value = result["primary_value"] + by
            result = {
                **result,
                "primary_value": value,
                "metrics": {**result["metrics"], result["primary_metric"]: value},
            }
        out.append(result)
    return out


@pytest.fixture
def baseline(tmp_path):
    return _run_folder(tmp_path / "baseline", three_seed_results())


def test_a_run_compared_with_itself_passes(baseline, capsys):
    assert main(["compare", str(baseline), str(baseline)]) == 0
    assert "0 regression(s)" in capsys.readouterr().out


def test_a_shift_beyond_threshold_and_noise_fails_and_names_the_cell(baseline, tmp_path, capsys):
    current = _run_folder(tmp_path / "current", _shifted(three_seed_results(), "sentiment", "lora", -0.10))
    assert main(["compare", str(baseline), str(current), "--markdown", str(tmp_path / "pr.md")]) == 1
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("sentiment/lora") and "accuracy" in row)
    assert "REGRESSION" in line and "Welch t-test, 3 vs 3 values" in line
    assert "1 regression(s)" in out
    markdown = (tmp_path / "pr.md").read_text()
    assert "❌ regression" in markdown and "sentiment / lora" in markdown


def test_a_shift_inside_the_noise_passes_and_says_why(tmp_path, capsys):
    noisy = [(0.60, 0.90, 0.75), (0.57, 0.87, 0.72)]  # a 3-point drop, seeds spread by 30 points
    runs = []
    for name, values in zip(("baseline", "current"), noisy):
        results = [cell_result("t", "lora", s, v, memory=GiB, tokens_per_s=100.0) for s, v in enumerate(values)]
        runs.append(_run_folder(tmp_path / name, results))
    assert main(["compare", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    assert "within noise: beyond the 2% threshold but not the noise (p = " in out


def test_one_seed_uses_the_threshold_alone_and_says_so(tmp_path, capsys):
    runs = []
    for name, value in (("baseline", 0.80), ("current", 0.70)):
        runs.append(_run_folder(tmp_path / name, [cell_result("t", "lora", 0, value, memory=GiB, tokens_per_s=9.0)]))
    assert main(["compare", *map(str, runs)]) == 1
    assert "one value on a side: threshold only" in capsys.readouterr().out


@pytest.mark.parametrize(
    "figure, before, after, verdict",
    [
        ("memory", GiB, 2 * GiB, "REGRESSION"),  # more memory is worse
        ("memory", 2 * GiB, GiB, "improvement"),
        ("tokens_per_s", 100.0, 50.0, "REGRESSION"),  # fewer tokens/s is worse
        ("tokens_per_s", 50.0, 100.0, "improvement"),
        ("train_seconds", 30.0, 60.0, "REGRESSION"),  # a longer training time is worse
        ("train_seconds", 60.0, 30.0, "improvement"),
    ],
)
def test_each_cost_figure_is_judged_in_its_own_direction(tmp_path, capsys, figure, before, after, verdict):
    runs = []
    for name, value in (("baseline", before), ("current", after)):
        figures = {"memory": GiB, "tokens_per_s": 100.0} | ({figure: value} if figure != "train_seconds" else {})
        result = cell_result("t", "lora", 0, 0.8, **figures)
        if figure == "train_seconds":
            result["timing"]["train_seconds"] = value
        runs.append(_run_folder(tmp_path / name, [result]))
    code = main(["compare", *map(str, runs), "--all"])
    label = {"memory": "peak memory", "tokens_per_s": "train tokens/s", "train_seconds": "train time (s)"}[figure]
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("t/lora") and label in row)
    assert verdict in line and code == (1 if verdict == "REGRESSION" else 0)


def test_a_cell_missing_from_the_current_run_is_a_regression_and_a_new_one_is_not(tmp_path, capsys):
    lora, full = (cell_result("t", s, 0, 0.8, memory=GiB, tokens_per_s=100.0) for s in ("lora", "full"))
    both, one = _run_folder(tmp_path / "both", [lora, full]), _run_folder(tmp_path / "one", [lora])
    assert main(["compare", str(both), str(one)]) == 1
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("t/full"))
    assert "REGRESSION" in line and "not in the current run" in line
    assert main(["compare", str(one), str(both)]) == 0  # a cell the baseline lacks is new, not lost


def test_different_library_versions_are_refused_unless_allowed(baseline, tmp_path, capsys):
    results = three_seed_results()
    for result in results:
        if result.get("provenance"):
            result["provenance"] = {**result["provenance"], "packages": {"torch": "2.14.0", "transformers": "5.24.0"}}
    current = _run_folder(tmp_path / "current", results)
    assert main(["compare", str(baseline), str(current)]) == 2
    err = capsys.readouterr().err
    assert "library versions differ: torch 2.13.0+cpu -> 2.14.0" in err and "--allow-mismatch" in err
    assert main(["compare", str(baseline), str(current), "--allow-mismatch"]) == 0


def test_a_different_device_or_task_config_is_refused_unless_allowed(baseline, tmp_path, capsys):
    gpu = three_seed_results()
    for result in gpu:
        if result.get("provenance"):
            result["provenance"] = {**result["provenance"], "device": "cuda", "device_name": "NVIDIA H200"}
    current = _run_folder(tmp_path / "gpu", gpu)
    assert main(["compare", str(baseline), str(current)]) == 2
    err = capsys.readouterr().err
    assert "device differ: baseline cpu (x86_64); current cuda (NVIDIA H200)" in err and "--allow-mismatch" in err
    assert main(["compare", str(baseline), str(current), "--allow-mismatch"]) == 0
    retuned = three_seed_results()
    for result in retuned:
        if result["strategy"] == "lora":
            result["config"] = {**result["config"], "training": {"learning_rate": 3e-4}}
    current = _run_folder(tmp_path / "retuned", retuned)
    assert main(["compare", str(baseline), str(current)]) == 2
    err = capsys.readouterr().err
    assert "task config of sentiment/lora differs in: training.learning_rate" in err
    assert "task config of sentiment/full" not in err  # only what changed is named
    assert main(["compare", str(baseline), str(current), "--allow-mismatch"]) == 0


def test_thresholds_come_from_the_gate_table_or_the_command_line(baseline, tmp_path, capsys):
    current = _run_folder(tmp_path / "current", _shifted(three_seed_results(), "sentiment", "lora", -0.10))
    gate = tmp_path / "suite.toml"
    gate.write_text('[suite]\nname = "g"\ntasks = []\n\n[gate]\nprimary = { absolute = 0.2 }\n')
    assert main(["compare", str(baseline), str(current), "--gate", str(gate)]) == 0  # a 0.1 drop is under 0.2
    assert main(["compare", str(baseline), str(current), "--threshold", "primary=0.05"]) == 1
    assert main(["compare", str(baseline), str(current), "--threshold", "accuracy=1%"]) == 2
    assert "--threshold: expected FIGURE=VALUE" in capsys.readouterr().err
    gate.write_text('[suite]\nname = "g"\ntasks = []\n\n[gate]\nprimary = { relative = 0.1, absolute = 0.2 }\n')
    assert main(["compare", str(baseline), str(current), "--gate", str(gate)]) == 2
    assert "gate.primary: give exactly one of relative, absolute" in capsys.readouterr().err


def test_a_rolling_baseline_pools_several_runs(tmp_path, capsys):
    """One lucky run on main does not fail the next run: the baselines' spread is the noise."""
    runs = []
    for number, value in enumerate((0.80, 0.70, 0.90, 0.78)):  # three runs of main, then the current one
        results = [cell_result("t", "lora", 0, value, memory=GiB, tokens_per_s=100.0)]
        runs.append(_run_folder(tmp_path / f"run{number}", results))
    assert main(["compare", str(runs[2]), str(runs[3])]) == 1  # against the lucky 0.90 alone: a regression
    assert main(["compare", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    assert "rolling baseline: 3 runs pooled" in out and "within noise" in out
    far = _run_folder(tmp_path / "far", [cell_result("t", "lora", 0, 0.20, memory=GiB, tokens_per_s=100.0)])
    assert main(["compare", *map(str, runs[:3]), str(far)]) == 1  # outside the pooled prediction interval
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("t/lora") and "accuracy" in row)
    assert "REGRESSION" in line and "prediction interval of 3 values" in line


def test_the_prediction_interval_p_value_by_hand():
    """One value against three: t = (x - mean) / (s * sqrt(1 + 1/n)) with n - 1 degrees of freedom."""
    from scipy import stats

    from harness.results.gate import _prediction_p

    # 0.80, 0.70, 0.90: mean 0.80, s = 0.10. x = 0.20: t = -0.6 / (0.1 * sqrt(4/3)) = -5.196
    assert _prediction_p([0.80, 0.70, 0.90], 0.20) == pytest.approx(2 * stats.t.sf(0.6 / (0.1 * (4 / 3) ** 0.5), 2))
    assert _prediction_p([0.80, 0.70, 0.90], 0.20) == pytest.approx(0.0351, abs=1e-4)
    assert _prediction_p([0.80, 0.70, 0.90], 0.78) == pytest.approx(2 * stats.t.sf(0.02 / (0.1 * (4 / 3) ** 0.5), 2))
    assert _prediction_p([0.5, 0.5], 0.5) == 1.0 and _prediction_p([0.5, 0.5], 0.6) == 0.0  # no spread


def _items_run(folder: Path, correct_by_seed: list[list[bool]], value_shift: float = 0.0) -> Path:
    for seed, correct in enumerate(correct_by_seed):
        result = cell_result("t", "lora", seed, sum(correct) / len(correct) + value_shift, memory=GiB, tokens_per_s=1.0)
        items = [{"id": i, "prediction": "a", "reference": "a", "correct": c} for i, c in enumerate(correct)]
        result["items"] = write_items(folder / "cells" / result["cell_id"], items, "correct", "accuracy", True)
        write_result(folder, result)
    return folder


def test_the_gate_uses_mcnemar_on_paired_items_with_the_hand_computed_p_value(tmp_path, capsys):
    from scipy import stats

    # 2 seeds x 40 items. Baseline right on every item; current wrong on 6 of seed 0 and 5 of seed 1,
    # right where the baseline is: b = 11 discordant pairs one way, c = 0 the other.
    base = [[True] * 40, [True] * 40]
    current = [[i >= 6 for i in range(40)], [i >= 5 for i in range(40)]]
    a = _items_run(tmp_path / "baseline", base)
    b = _items_run(tmp_path / "current", current)
    assert main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    expected = min(1.0, 2 * stats.binom.cdf(0, 11, 0.5))  # = 2 / 2**11
    assert f"p = {expected:.3g}" in out and "McNemar exact test, 2 seeds x 40 items" in out


# ---------------------------------------------------------------- CI exports


def test_pytest_benchmark_compare_reads_our_export(baseline, tmp_path):
    out = tmp_path / "0001_tunebench.json"
    assert main(["report", str(baseline), "--format", "pytest-benchmark", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert {b["name"] for b in payload["benchmarks"]} >= {"sentiment/full", "sentiment/lora", "qa/full"}
    tool = Path(sys.executable).with_name("pytest-benchmark")
    command = [str(tool), "compare", str(out), "--columns", "mean,rounds"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Failed to load" not in done.stdout + done.stderr
    assert "sentiment/lora" in done.stdout and "qa/full" in done.stdout


GITHUB_ACTION_BENCHMARK_SCHEMA = {  # from the tool's README, "Examples: custom tools": an array of results
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "unit", "value"],
        "properties": {
            "name": {"type": "string"},
            "unit": {"type": "string"},
            "value": {"type": "number"},
            "range": {"type": "string"},
            "extra": {"type": "string"},
        },
        "additionalProperties": False,
    },
}


@pytest.mark.parametrize("fmt", ["github-action-benchmark", "github-action-benchmark-smaller"])
def test_github_action_benchmark_export_matches_the_documented_schema(baseline, capsys, fmt):
    import jsonschema

    assert main(["report", str(baseline), "--format", fmt]) == 0
    entries = json.loads(capsys.readouterr().out)
    jsonschema.validate(entries, GITHUB_ACTION_BENCHMARK_SCHEMA)
    names = {e["name"] for e in entries}
    if fmt == "github-action-benchmark":  # bigger is better: accuracy and throughput
        assert "sentiment/full accuracy" in names and "sentiment/full train tokens/s" in names
        assert "qa/full perplexity" not in names
    else:
        assert "qa/full perplexity" in names and "sentiment/full peak memory" in names


# ---------------------------------------------------------------- the example workflow


def _workflow_commands() -> list[list[str]]:
    import yaml

    workflow = yaml.safe_load(WORKFLOW.read_text())
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                if line.strip().startswith("tunebench "):
                    commands.append(shlex.split(line.strip().replace("${{ matrix.shard }}", "1")))
    return commands


def test_the_example_workflow_is_valid_yaml_using_the_real_cli():
    import yaml

    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert {"shard", "merge"} <= set(workflow["jobs"])
    commands = _workflow_commands()
    assert {c[1] for c in commands} >= {"run", "merge", "report", "compare"}
    parser = build_parser()
    for command in commands:
        parser.parse_args(command[1:])  # argparse exits on an unknown option or command


def test_the_workflow_sequence_runs_locally(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    """shards 1/2 and 2/2 -> merge -> report -> compare against a baseline, with the workflow's commands."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = write_task(tmp_path, "ci", tiny_bert_dir)
    suite = tmp_path / "suite.toml"
    suite.write_text(f'[suite]\nname = "ci"\ntasks = ["{task.name}"]\nstrategies = ["none", "lora"]\n')
    for i in (1, 2):
        assert main(["run", str(suite), "--shard", f"{i}/2", "--out", str(tmp_path / f"shard-{i}")]) == 0
    assert main(["merge", str(tmp_path / "merged"), str(tmp_path / "shard-1"), str(tmp_path / "shard-2")]) == 0
    assert main(["report", str(tmp_path / "merged"), "--out", str(tmp_path / "report.html")]) == 0
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    merged = str(tmp_path / "merged")
    assert main(["compare", merged, merged, "--markdown", str(tmp_path / "comment.md")]) == 0
    assert "✅ no regression" in summary.read_text() and (tmp_path / "report.html").exists()
    assert "0 regression(s)" in capsys.readouterr().out


def test_the_welch_p_value_by_hand():
    """Welch's t: (mean_a - mean_b) / sqrt(var_a/n_a + var_b/n_b), Welch-Satterthwaite degrees of freedom."""
    import statistics

    from scipy import stats

    from harness.results.gate import _welch_p

    def welch(a, b):
        sa, sb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        t = (statistics.fmean(a) - statistics.fmean(b)) / (sa + sb) ** 0.5
        df = (sa + sb) ** 2 / (sa**2 / (len(a) - 1) + sb**2 / (len(b) - 1))
        return 2 * stats.t.sf(abs(t), df)

    a, b = [0.80, 0.82, 0.84, 0.86], [0.70, 0.75]  # unequal sizes and spreads: Student's t would differ
    assert _welch_p(a, b) == pytest.approx(welch(a, b)) and welch(a, b) == pytest.approx(0.0931, abs=1e-4)
    assert _welch_p([0.5, 0.5, 0.5], [0.6, 0.7, 0.8]) == pytest.approx(welch([0.5, 0.5, 0.5], [0.6, 0.7, 0.8]))
    assert _welch_p([0.5] * 3, [0.5] * 2) == 1.0 and _welch_p([0.5] * 3, [0.6] * 2) == 0.0  # no spread at all


def test_merge_takes_the_same_cell_written_with_its_keys_in_another_order(tmp_path):
    result = cell_result("t", "lora", 0, 0.80, memory=GiB, tokens_per_s=100.0)
    a, b = _run_folder(tmp_path / "a", [result]), _run_folder(tmp_path / "b", [result])
    copy = next((b / "cells").glob("*.json"))  # as another writer may lay it out: same content, keys reordered
    text = json.loads(copy.read_text())
    copy.write_text(json.dumps({**text, "metrics": dict(reversed(list(text["metrics"].items())))}))
    assert main(["merge", str(tmp_path / "out"), str(a), str(b)]) == 0
