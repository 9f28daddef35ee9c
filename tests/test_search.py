"""Strategy training defaults and the learning-rate search: trials are cells scored on a validation carve of
the training rows (never the eval split), the final cell trains with the best rate."""

from __future__ import annotations

import io
import json
import math
import re

import pytest

import harness
from harness.cli import main
from harness.config import ConfigError, load_matrix
from harness.results.io import read_results
from harness.results.search import SearchSummary, choose, summaries
from harness.run.search import run_with_search
from tests.helpers import ROOT, write_task

SEARCH = "\n[search]\nlearning_rates = [1e-4, 3e-2]\nvalidation = 16\n"


def test_each_strategy_brings_its_learning_rate_and_a_task_overrides_only_what_it_sets(tmp_path, tiny_bert_dir):
    task = write_task(tmp_path, "defaults", tiny_bert_dir)
    task.write_text(task.read_text().replace("learning_rate = 1e-3\n", ""))
    rates = {c.strategy: c.task.training.learning_rate for c in load_matrix([task]).cells}
    assert rates == {"none": 1e-4, "full": 1e-4, "frozen-lower": 3e-4, "adapter": 1e-3, "lora": 3e-3}  # encoder
    task.write_text(task.read_text() + "\n[strategies.lora.training]\nlearning_rate = 2e-3\n")
    rates = {c.strategy: c.task.training.learning_rate for c in load_matrix([task]).cells}
    assert rates["lora"] == 2e-3 and rates["full"] == 1e-4
    task.write_text(task.read_text().replace("[training]\n", "[training]\nlearning_rate = 7e-4\n"))
    rates = {c.strategy: c.task.training.learning_rate for c in load_matrix([task]).cells}
    assert rates == {"none": 7e-4, "full": 7e-4, "frozen-lower": 7e-4, "adapter": 7e-4, "lora": 2e-3}


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_bert_dir):
    """One grid search of lora's learning rate on the tiny BERT, run through the CLI."""
    folder = tmp_path_factory.mktemp("search")
    task = write_task(folder, "searched", tiny_bert_dir, body=SEARCH)
    run_dir = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(ROOT))
        assert main(["run", str(task), "--strategies", "lora", "--out", str(run_dir)]) == 0
    return task, run_dir


def test_trials_score_on_a_validation_carve_and_the_final_cell_uses_the_best_rate(searched):
    _, run_dir = searched
    results = read_results(run_dir)
    trials = sorted((r for r in results if (r["search"] or {}).get("role") == "trial"), key=lambda r: r["seed"])
    finals = [r for r in results if (r["search"] or {}).get("role") == "final"]
    assert len(trials) == 2 and len(finals) == 1
    for trial in trials:
        assert trial["data"]["eval"] is None and trial["data"]["validation"] == 16
        assert trial["data"]["eval_rows"] == 16 and trial["data"]["train_rows"] == 64  # capped after the carve
        assert trial["config"]["task"]["data"]["validation"] == 16
    scores = {r["search"]["learning_rate"]: r["primary_value"] for r in trials}
    best = max(sorted(scores), key=lambda rate: (scores[rate], -rate))
    final = finals[0]
    assert final["search"]["learning_rate"] == best == final["config"]["task"]["training"]["learning_rate"]
    assert final["search"]["method"] == "grid" and final["data"]["eval_rows"] == 48
    assert sorted(rate for rate, _ in final["search"]["trials"]) == [1e-4, 3e-2]
    cells = harness.load_results(run_dir)
    assert sorted(cells["search_role"].fillna("")) == ["final", "trial", "trial"]
    rows = harness.load_aggregates(run_dir)
    assert list(rows["strategy"]) == ["lora"] and int(rows["n"].iloc[0]) == 1  # trials are not rows


def test_a_resumed_search_runs_nothing_again(searched):
    task, run_dir = searched
    matrix = load_matrix([task], strategies=("lora",))
    stream = io.StringIO()
    outcomes = run_with_search(matrix, run_dir, stream, runner=lambda *a: pytest.fail("re-ran a finished cell"))
    assert len(outcomes) == 3 and all(o.skipped for o in outcomes)
    assert "chose lr=" in stream.getvalue()


def test_the_search_never_sees_the_eval_split(searched, tmp_path, tiny_bert_dir, monkeypatch):
    """Scrambled eval labels: the same trials (ids, scores) and the same chosen rate."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    _, run_dir = searched
    scrambled = tmp_path / "eval.jsonl"
    rows = [json.loads(line) for line in (ROOT / "tasks/data/sentiment/eval.jsonl").read_text().splitlines()]
    flip = {"positive": "negative", "negative": "positive"}
    scrambled.write_text("".join(json.dumps({**r, "sentiment": flip[r["sentiment"]]}) + "\n" for r in rows))
    task = write_task(tmp_path, "searched", tiny_bert_dir, body=SEARCH)
    task.write_text(task.read_text().replace(f"{ROOT}/tasks/data/sentiment/eval.jsonl", str(scrambled)))
    assert main(["run", str(task), "--strategies", "lora", "--out", str(tmp_path / "run")]) == 0

    def trials_and_choice(folder):
        results = read_results(folder)
        trials = {
            r["cell_id"]: (r["primary_value"], r["data"]["eval_sha256"])
            for r in results
            if r["search"]["role"] == "trial"
        }
        return trials, [r["search"]["learning_rate"] for r in results if r["search"]["role"] == "final"]

    assert trials_and_choice(tmp_path / "run") == trials_and_choice(run_dir)
    finals = [r for r in read_results(tmp_path / "run") if r["search"]["role"] == "final"]
    assert (
        finals[0]["data"]["eval_sha256"]
        != [r for r in read_results(run_dir) if r["search"]["role"] == "final"][0]["data"]["eval_sha256"]
    )  # the final cells did read the (scrambled) eval split


def test_a_trial_does_not_even_open_the_eval_file(tmp_path, tiny_bert_dir):
    from harness.data import load_task_data

    broken = tmp_path / "eval.jsonl"
    broken.write_bytes(b"\xff not json\n")
    task = write_task(tmp_path, "blind", tiny_bert_dir, body=SEARCH)
    task.write_text(task.read_text().replace(f"{ROOT}/tasks/data/sentiment/eval.jsonl", str(broken)))
    matrix = load_matrix([task], strategies=("lora",))
    from harness.run.search import plan, trial_cell

    trial = trial_cell(plan(matrix)[0], 1e-3)
    data = load_task_data(trial.task, ("text", "label"))
    assert len(data.eval) == 16 and data.record["eval"] is None
    with pytest.raises(ValueError, match="eval.jsonl"):
        load_task_data(matrix.cells[0].task, ("text", "label"))


def test_the_report_shows_the_sensitivity_chart_and_the_chosen_rate(searched):
    _, run_dir = searched
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    chosen = [r for r in read_results(run_dir) if (r["search"] or {}).get("role") == "final"][0]
    assert "Learning-rate search" in html and "searched: accuracy vs learning rate" in html
    assert f"{chosen['search']['learning_rate']:g}" in html


def test_a_trial_of_a_split_task_never_holds_an_eval_row(tmp_path, tiny_bert_dir):
    """Eval carved out of the one training file (as 7 of the 11 shipped tasks do): a trial trains and scores
    on the split's training rows only, never on the whole file."""
    from harness.data import load_task_data
    from harness.run.search import plan, trial_cell

    body = "\n[search]\nlearning_rates = [1e-3]\nvalidation = 0.25\n"
    task = write_task(tmp_path, "carved", tiny_bert_dir, body=body)
    carve = "split = { eval = 40, seed = 0 }"
    text = task.read_text().replace(f'eval = "{ROOT}/tasks/data/sentiment/eval.jsonl"', carve)
    task.write_text(text.replace("max_train_samples = 64", "max_train_samples = 1000"))
    matrix = load_matrix([task], strategies=("lora",))
    final = load_task_data(matrix.cells[0].task, ("text", "label"))
    trial = load_task_data(trial_cell(plan(matrix)[0], 1e-3).task, ("text", "label"))
    held_out = {row["text"] for row in final.eval}
    seen = [row["text"] for row in trial.train + trial.eval]
    assert len(held_out) == 40 and not held_out & set(seen)
    assert set(seen) <= {row["text"] for row in final.train}  # the carve splits the training rows


def test_the_budgeted_search_steers_towards_the_better_rates(tmp_path, tiny_bert_dir):
    """24 trials, four random start-up ones: TPE ends up sampling near the best rate (1e-3 here), which it
    would flee if the study's direction were wrong."""
    pytest.importorskip("optuna")
    import statistics

    from harness.results.io import write_result
    from harness.run.search import _optuna_rounds, plan
    from tests.report_fixtures import GiB, cell_result

    body = "\n[search]\nlearning_rates = [1e-5, 1e-1]\ntrials = 24\nvalidation = 0.25\n"
    matrix = load_matrix([write_task(tmp_path, "steered", tiny_bert_dir, body=body)], strategies=("lora",))
    distance = lambda rate: abs(math.log10(rate / 1e-3))  # noqa: E731  decades from the best rate

    def run(cells):
        for cell in cells:
            score = 1 - distance(cell.task.training.learning_rate) / 4  # accuracy: higher is better
            result = cell_result("steered", "lora", 0, score, memory=GiB, tokens_per_s=1.0)
            write_result(tmp_path / "run", {**result, "cell_id": cell.cell_id})

    done = _optuna_rounds(plan(matrix), run, tmp_path / "run")
    rates = [cell.task.training.learning_rate for cell in done[("steered", "lora")]]
    assert len(rates) == 24
    late = statistics.median(map(distance, rates[12:]))  # once TPE has a dozen scores to go by
    assert late < 0.75, rates  # flipped, TPE would chase the grid's ends, 2 decades away


def test_a_budgeted_search_asks_optuna_for_rates_in_the_grid_range(tmp_path, tiny_bert_dir, monkeypatch):
    pytest.importorskip("optuna")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    body = "\n[search]\nlearning_rates = [1e-4, 1e-2]\ntrials = 3\nvalidation = 0.25\n"
    task = write_task(tmp_path, "budgeted", tiny_bert_dir, body=body)
    assert main(["run", str(task), "--strategies", "adapter", "--out", str(tmp_path / "run")]) == 0
    results = read_results(tmp_path / "run")
    trials = [r for r in results if r["search"]["role"] == "trial"]
    assert 1 <= len({r["cell_id"] for r in trials}) <= 3 and len(trials) <= 3
    assert all(1e-4 <= r["search"]["learning_rate"] <= 1e-2 for r in trials)
    final = [r for r in results if r["search"]["role"] == "final"][0]
    assert final["search"]["method"] == "optuna-tpe"
    assert final["search"]["learning_rate"] in {r["search"]["learning_rate"] for r in trials}


def test_search_on_the_command_line_uses_each_strategys_grid(tmp_path, tiny_bert_dir):
    from harness.run.search import plan

    task = write_task(tmp_path, "cli", tiny_bert_dir)
    matrix = load_matrix([task], search=harness.specs.SearchSpec())
    grids = {group.cell.strategy: group.grid for group in plan(matrix)}
    assert set(grids) == {"full", "frozen-lower", "adapter", "lora"}  # `none` does not train
    assert grids["full"] == (1e-5, 3e-5, 1e-4, 3e-4) and len(grids["lora"]) == 4
    assert plan(load_matrix([task])) == []


def test_a_trial_scores_at_most_score_rows_of_a_large_carve(tmp_path, tiny_bert_dir):
    """A share of a large pool is a large carve (diabetes: 28,719 rows, scored by every trial while it
    trained on 960): every trial scores the same fixed subset of it, at most `[search] score_rows` rows
    (and at most the task's own max_eval_samples), while the whole carve stays out of training."""
    from harness.data import load_task_data
    from harness.run.race import RACE_SCORE_ROWS, rung_cell
    from harness.run.search import plan, trial_cell

    def trial_rows(body: str, caps: str, rate: float = 1e-3):
        task = write_task(tmp_path, "large", tiny_bert_dir, body=f"\n[search]\nvalidation = 0.5\n{body}")
        task.write_text(task.read_text().replace("max_train_samples = 64\nmax_eval_samples = 48\n", caps))
        group = plan(load_matrix([task], strategies=("lora",)))[0]
        rung = rung_cell(group.cell, rate, 2, None).task.data.max_eval_samples  # pick's race: its own lower cap
        assert rung == min(RACE_SCORE_ROWS, trial_cell(group, rate).task.data.max_eval_samples)
        return load_task_data(trial_cell(group, rate).task, ("text", "label"))

    uncapped = "max_train_samples = 1000\n"
    default, whole = trial_rows("", uncapped), trial_rows("score_rows = 100000\n", uncapped)
    assert default.eval == whole.eval and len(whole.eval) == 240  # half of 480 rows: under the default 2,000
    first, second = (trial_rows("score_rows = 12\n", uncapped, rate) for rate in (1e-3, 1e-2))
    assert first.record["eval_rows"] == 12 and first.eval == second.eval  # the same 12 rows for every rate
    assert {r["text"] for r in first.eval} < {r["text"] for r in whole.eval}
    assert first.train == whole.train  # the carve left out of training is the whole carve either way
    assert trial_rows("score_rows = 12\n", uncapped + "max_eval_samples = 5\n").record["eval_rows"] == 5


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("validation = 0", "search.validation: must be a share between 0 and 1 or a whole count, got 0"),
        ("score_rows = 0", "search.score_rows: must be >= 1"),
        ("learning_rates = [1e-3, -1.0]", "search.learning_rates[1]: must be > 0, got -1.0"),
        ("trials = 0", "search.trials: must be >= 1"),
        ("grid = [1e-3]", "search.grid: unknown key"),
    ],
)
def test_a_bad_search_table_is_a_one_line_error(tmp_path, tiny_bert_dir, table, message):
    task = write_task(tmp_path, "bad", tiny_bert_dir, body=f"\n[search]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_matrix([task])


def test_choose_prefers_the_best_mean_and_the_smaller_rate_on_a_tie():
    assert choose({1e-3: [0.8, 0.6], 1e-2: [0.7, 0.7], 1e-4: [0.5, 0.5]}, "accuracy")[0] == 1e-3
    assert choose({1e-3: [0.7], 1e-2: [0.7]}, "accuracy")[0] == 1e-3
    assert choose({1e-3: [20.0], 1e-2: [12.0]}, "perplexity")[0] == 1e-2  # lower is better
    assert choose({1e-3: [0.9, None], 1e-2: [0.7, 0.7]}, "accuracy")[0] == 1e-2  # a failed seed disqualifies
    assert choose({1e-3: [None]}, "accuracy") == (None, {1e-3: None})


def test_robustness_is_the_share_of_the_best_score_kept_at_twice_and_half_the_rate():
    # Best 0.8 at 1e-3; 2e-3 lies log(2)/log(10) of the way to 1e-2 (0.4): 0.8 - 0.4 * 0.30103 = 0.6796
    summary = SearchSummary("t", "lora", "accuracy", ((1e-4, 0.8), (1e-3, 0.8), (1e-2, 0.4)), 1e-3)
    assert summary.robustness == pytest.approx((0.8 - 0.4 * math.log10(2)) / 0.8)
    edge = SearchSummary("t", "lora", "accuracy", ((1e-3, 0.5), (1e-2, 0.9)), 1e-2)
    assert edge.robustness == pytest.approx((0.9 - 0.4 * math.log10(2)) / 0.9)  # only the half side is inside
    lower = SearchSummary("t", "lora", "perplexity", ((1e-3, 10.0), (1e-2, 20.0)), 1e-3)
    assert lower.robustness == pytest.approx(10.0 / (10.0 + 10.0 * math.log10(2)))
    assert SearchSummary("t", "lora", "accuracy", ((1e-3, 0.5),), 1e-3).robustness is None


def test_summaries_read_the_trials_of_a_run(searched):
    _, run_dir = searched
    (summary,) = summaries(read_results(run_dir))
    final = [r for r in read_results(run_dir) if r["search"] and r["search"]["role"] == "final"][0]
    assert (summary.task, summary.strategy, summary.chosen) == ("searched", "lora", final["search"]["learning_rate"])


def test_the_search_section_renders_in_headless_chromium(searched, tmp_path):
    from tests.chromium_page import CHROMIUM, DevToolsPage

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    _, run_dir = searched
    chosen = [r for r in read_results(run_dir) if (r["search"] or {}).get("role") == "final"][0]
    page = DevToolsPage(tmp_path / "profile")
    try:
        for domain in ("Page", "Runtime"):
            page.page(f"{domain}.enable")
        page.page("Page.navigate", url=(run_dir / "report.html").resolve().as_uri())
        page.wait_for("Page.loadEventFired")
        section = "document.querySelector('section[data-task=searched]')"
        figure = f"{section}.querySelector('table.search').closest('div').previousElementSibling"
        title = page.evaluate(f"{figure}.querySelector('svg').getAttribute('aria-label')")
        rows = page.evaluate(
            f"Array.from({section}.querySelectorAll('table.search tbody tr'))"
            ".map(r => Array.from(r.cells).map(c => c.textContent.trim()))"
        )
        points = page.evaluate(f"{figure}.querySelectorAll('circle > title').length")
        errors = [e for e in page.events if e["method"] == "Runtime.exceptionThrown"]
    finally:
        page.close()
    assert errors == [] and title == "searched: accuracy vs learning rate (search trials, validation rows)"
    assert rows[0][0] == "lora" and rows[0][1] == f"{chosen['search']['learning_rate']:g}"
    assert points == 2  # one point per trial


def test_one_rate_per_strategy_keeps_the_most_of_each_tasks_best():
    from harness.results.search import shared_rates

    found = [
        SearchSummary("a", "lora", "accuracy", ((1e-3, 0.9), (3e-3, 0.8), (1e-2, 0.5)), 1e-3),
        SearchSummary("b", "lora", "accuracy", ((1e-3, 0.5), (3e-3, 0.95), (1e-2, 1.0)), 1e-2),
        SearchSummary("c", "lora", "perplexity", ((1e-3, 20.0), (3e-3, 10.0), (1e-2, None)), 3e-3),
    ]
    # kept at 1e-3: (1 + 0.5 + 0.5) / 3; at 3e-3: (0.8/0.9 + 0.95 + 1) / 3; at 1e-2: (0.5/0.9 + 1 + 0) / 3
    rate, kept, tasks = shared_rates(found)["lora"]
    assert rate == 3e-3 and kept == pytest.approx((0.8 / 0.9 + 0.95 + 1) / 3) and tasks == 3


def test_the_search_export_lists_trials_choices_and_shared_rates(searched, capsys):
    _, run_dir = searched
    assert main(["report", str(run_dir), "--format", "search"]) == 0
    out = capsys.readouterr().out
    assert "| searched | lora | accuracy | 0.0001: " in out and "| lora | " in out


def test_defaults_follow_the_model_kind(tmp_path):
    from harness.strategies import STRATEGIES

    lora, full = STRATEGIES.get("lora"), STRATEGIES.get("full")
    assert lora.training_defaults("causal") == {"learning_rate": 1e-2}
    assert lora.training_defaults("encoder") == {"learning_rate": 3e-3}
    assert full.training_defaults("seq2seq") == full.defaults  # no kind-specific value: the all-task one
    rates = {c.strategy: c.task.training.learning_rate for c in load_matrix([ROOT / "tasks/medical.toml"]).cells}
    assert rates == {"none": 1e-4, "full": 3e-4, "frozen-lower": 3e-4, "adapter": 1e-3, "lora": 1e-2}  # causal
