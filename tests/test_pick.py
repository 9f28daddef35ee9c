"""`tunebench pick`: the race on validation rows, its pruning, resume, limits, the finals and the cost."""

from __future__ import annotations

import json

import pytest

from harness.config import load_matrix
from harness.data import load_task_data
from harness.results.io import write_result
from harness.run.executor import run_matrix
from harness.run.race import REDUCTION, Entry, contenders, final_cells, run_race, rung_budgets
from tests.helpers import write_reviews, write_split_task
from tests.report_fixtures import GiB, cell_result

pytest.importorskip("optuna")


@pytest.fixture
def train_file(tmp_path):
    return write_reviews(tmp_path)


def test_rung_budgets_are_a_ninth_and_a_third_of_the_planned_steps():
    assert REDUCTION == 3
    assert rung_budgets(36) == [4, 12] and rung_budgets(120) == [13, 40]
    assert rung_budgets(12) == [4]  # a ninth would be one step: left out
    assert rung_budgets(2) == [1]


# ---------------------------------------------------------------- the race's logic, on written results


def _fake_runner(run_dir, scores, memory=None):
    """A `run` that writes a result per cell instead of training: the score scores[(strategy, rate)]
    plus a thousandth per training step (longer rungs score a little higher), items of 200 answers."""
    from harness.results.items import CORRECT, write_items

    ran = []

    def run(cells):
        for cell in cells:
            ran.append(cell.label + f"@{cell.task.training.max_steps}")
            rate = cell.task.training.learning_rate
            steps = cell.task.training.max_steps or 36
            value = scores[(cell.strategy, rate)] + steps / 1000
            result = cell_result(
                cell.task.name,
                cell.strategy,
                cell.seed,
                value,
                memory=(memory or {}).get(cell.strategy, GiB),
                tokens_per_s=100.0,
            )
            right = set(range(round(value * 200)))
            items = [{"id": i, "prediction": "p", "reference": "p", "correct": i in right} for i in range(200)]
            result["items"] = write_items(run_dir / "cells" / cell.cell_id, items, CORRECT, "accuracy", True)
            result.update(
                cell_id=cell.cell_id,
                config=cell.resolved(),
                training={"steps": steps},
                timing={"load_seconds": 1.0, "train_seconds": steps * 0.5, "eval_seconds": 2.0},
                preflight={"total_bytes": (memory or {}).get(cell.strategy, GiB)},
            )
            write_result(run_dir, result)

    return run, ran


def _bases(task, strategies=("frozen-lower", "lora")):
    return [c for c in load_matrix([task], strategies=strategies, seeds=1).cells]


def test_the_race_keeps_the_best_third_of_each_strategys_rates_and_never_drops_a_strategy(
    tmp_path, tiny_bert_dir, train_file
):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {("frozen-lower", r): v for r, v in zip((3e-5, 1e-4, 3e-4, 1e-3), (0.60, 0.70, 0.80, 0.65))}
    scores |= {("lora", r): v for r, v in zip((3e-4, 1e-3, 3e-3, 1e-2), (0.50, 0.55, 0.52, 0.40))}
    run, ran = _fake_runner(tmp_path / "run", scores)
    state = run_race(_bases(task), run, tmp_path / "run")
    assert state.budgets == [4, 12]
    assert len([r for r in ran if r.endswith("@4")]) == 8  # every pair at a ninth
    assert sorted(r for r in ran if r.endswith("@12")) == [  # each strategy's best at a third
        "raced/frozen-lower/seed0/trial lr=0.0003@12",
        "raced/lora/seed0/trial lr=0.001@12",
    ]
    assert state.pruned[Entry("lora", 1e-2)] == 4 and Entry("lora", 1e-3) not in state.pruned
    assert state.best("lora", True) == (Entry("lora", 1e-3), pytest.approx(0.562))
    leader, p_values = contenders(state, tmp_path / "run", True)
    assert leader == "frozen-lower" and p_values["lora"] < 0.05  # 0.812 against 0.562 on 200 items
    finals = final_cells(_bases(task), state, leader, p_values, True)
    assert sorted((c.strategy, c.seed, c.task.training.learning_rate) for c in finals) == [
        ("frozen-lower", 0, 3e-4),
        ("frozen-lower", 1, 3e-4),
        ("frozen-lower", 2, 3e-4),
        ("lora", 0, 1e-3),
    ]  # the leader with three seeds, the one beyond validation noise once
    assert all(c.task.training.max_steps is None and not c.is_trial for c in finals)  # full budget, on eval


def test_a_memory_limit_drops_a_strategy_after_its_first_rung_and_says_why(tmp_path, tiny_bert_dir, train_file):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {(s, r): 0.5 + r for s in ("frozen-lower", "lora") for r in (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)}
    run, ran = _fake_runner(tmp_path / "run", scores, memory={"frozen-lower": 3 * GiB, "lora": GiB})
    state = run_race(_bases(task), run, tmp_path / "run", max_memory=2 * GiB)
    assert state.excluded == {"frozen-lower": "its measured peak (3.00 GiB) exceeds --max-memory (2.00 GiB)"}
    assert not any("frozen-lower" in r and r.endswith("@12") for r in ran)
    leader, _ = contenders(state, tmp_path / "run", True)
    assert leader == "lora"


def test_a_budget_stops_promoting_and_lists_what_did_not_run(tmp_path, tiny_bert_dir, train_file):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {(s, r): 0.5 + r for s in ("frozen-lower", "lora") for r in (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)}
    run, ran = _fake_runner(tmp_path / "run", scores)
    state = run_race(_bases(task), run, tmp_path / "run", budget_s=10.0)  # rung 0 alone takes 8 x 5 s
    assert state.stopped_by_budget and all(r.endswith("@4") for r in ran)
    assert sorted(state.not_run) == [
        "raced/frozen-lower/seed0/trial lr=0.001 (12 steps)",
        "raced/lora/seed0/trial lr=0.01 (12 steps)",
    ]


# ---------------------------------------------------------------- real cells


def test_the_race_never_reads_eval_rows(tmp_path, tiny_bert_dir, train_file):
    """Every eval label of the split task scrambled: the same rung scores, the same pruning, the same leader."""
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    bases = _bases(task)
    eval_reviews = {row["text"] for row in load_task_data(bases[0].task, ("text", "label")).eval}
    flip = {"positive": "negative", "negative": "positive"}
    rows = [json.loads(line) for line in train_file.read_text().splitlines()]
    scrambled_file = tmp_path / "scrambled" / "reviews.jsonl"
    scrambled_file.parent.mkdir()
    scrambled_file.write_text(
        "".join(
            json.dumps({**r, "sentiment": flip[r["sentiment"]] if r["review"] in eval_reviews else r["sentiment"]})
            + "\n"
            for r in rows
        )
    )
    assert sum(r["review"] in eval_reviews for r in rows) == 40
    scrambled = write_split_task(tmp_path / "scrambled", tiny_bert_dir, scrambled_file)

    def race(task_file, run_dir):
        matrix = load_matrix([task_file], strategies=("frozen-lower", "lora"), seeds=1)
        state = run_race(list(matrix.cells), lambda cells: run_matrix(matrix.__class__(tuple(cells)), run_dir), run_dir)
        scores = {(e.strategy, e.rate): s for e, s in state.scores.items()}
        return scores, dict(sorted((str(e), b) for e, b in state.pruned.items())), contenders(state, run_dir, True)[0]

    assert race(task, tmp_path / "a") == race(scrambled, tmp_path / "b")


def test_a_race_started_again_runs_no_finished_rung_again(tmp_path, tiny_bert_dir, train_file):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    matrix = load_matrix([task], strategies=("lora",), seeds=1)
    run_dir = tmp_path / "run"
    calls = []

    def interrupted(cells):
        calls.append(len(cells))
        if len(calls) == 2:  # killed as the second rung starts
            raise KeyboardInterrupt
        run_matrix(matrix.__class__(tuple(cells)), run_dir)

    with pytest.raises(KeyboardInterrupt):
        run_race(list(matrix.cells), interrupted, run_dir)
    outcomes = []
    state = run_race(
        list(matrix.cells), lambda cells: outcomes.extend(run_matrix(matrix.__class__(tuple(cells)), run_dir)), run_dir
    )
    first_rung = [o for o in outcomes if o.cell.task.training.max_steps == 4]
    assert len(first_rung) == 4 and all(o.skipped for o in first_rung)  # read back, not run again
    second_rung = [o for o in outcomes if o.cell.task.training.max_steps == 12]
    assert second_rung and not any(o.skipped for o in second_rung)  # run once, after the restart
    assert not (run_dir / "stale").exists()  # a rung of one rate never sets aside another rung's result
    assert state.best("lora", True) is not None


def test_pick_runs_the_finals_and_prints_the_answer_with_its_cost(tmp_path, tiny_bert_dir, train_file, capsys):
    from harness.cli import main

    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    assert main(["pick", str(task), "--strategies", "lora", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "pick.json").read_text())
    assert record["pick"] == "lora" and out.startswith("pick lora (lr ")
    cost = record["cost"]
    assert cost["cell_seconds"]["race"] > 0 and cost["cell_seconds"]["finals"] > 0
    assert 0 < cost["ratio"] < 1 and f"{cost['ratio']:.2f}x" in out
    assert "race: leader on validation" in out
    assert len(record["race"]["pairs"]) == 4  # lora's grid
    assert "The pick" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_the_report_opens_with_the_pick_and_draws_the_race(tmp_path, tiny_bert_dir, train_file):
    """The pick section and its race chart render in headless Chromium, before the overview."""
    from chromium_page import png_pixels, screenshot_png

    from harness.report.html import render_html
    from harness.run.race import write_pick
    from tests.test_report import CHROMIUM, PAGE_HEIGHT, PAGE_WIDTH, _open, _problems

    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {("frozen-lower", r): v for r, v in zip((3e-5, 1e-4, 3e-4, 1e-3), (0.60, 0.70, 0.80, 0.65))}
    scores |= {("lora", r): v for r, v in zip((3e-4, 1e-3, 3e-3, 1e-2), (0.50, 0.55, 0.52, 0.40))}
    run_dir = tmp_path / "run"
    run, _ = _fake_runner(run_dir, scores)
    state = run_race(_bases(task), run, run_dir)
    answer = ["pick frozen-lower (lr 0.0003): accuracy 0.812 over 3 seed(s)", "race: leader on validation frozen-lower"]
    write_pick(run_dir, {"task": "raced", "pick": "frozen-lower", "answer": answer, "race": state.record()})
    page_html = render_html(run_dir)
    assert page_html.index('id="picked"') < page_html.index('id="overview"')
    assert "pick frozen-lower (lr 0.0003)" in page_html and "the race on validation rows" in page_html
    assert page_html.count('stroke="#c8c8c8"') >= 6  # the six dropped pairs in grey
    assert "Learning-rate search" not in page_html  # the race's trials are not drawn as a grid search
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium for the browser half")
    path = tmp_path / "report.html"
    path.write_text(page_html, encoding="utf-8")
    page = _open(path, tmp_path / "profile")
    try:
        assert _problems(page, path.resolve().as_uri()) == ([], [])
        top = page.evaluate("document.querySelector('#picked svg').getBoundingClientRect().top")
        assert 0 < top < page.evaluate("document.querySelector('#overview').getBoundingClientRect().top")
        page.evaluate("document.querySelector('#picked').scrollIntoView()")
        png = screenshot_png(page, PAGE_WIDTH, PAGE_HEIGHT)
        (tmp_path / "pick.png").write_bytes(png)
        _, _, rows = png_pixels(png)
        assert len({row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 12)}) > 20  # drawn, not blank
    finally:
        page.close()
