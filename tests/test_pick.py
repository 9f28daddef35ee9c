"""`tunebench pick`: the race on validation rows, its pruning, resume, limits, the finals and the cost."""

from __future__ import annotations

import json

import pytest

import harness
from harness.config import load_matrix
from harness.data import load_task_data
from harness.results.io import cell_result_path, write_result
from harness.results.items import read_items
from harness.run.executor import run_matrix
from harness.run.race import REDUCTION, Entry, contenders, final_cells, run_race, rung_budgets
from harness.run.search import resolve_cell
from harness.specs import Matrix
from tests.helpers import TWO_RATES, write_reviews, write_split_task
from tests.report_fixtures import GiB, cell_result


@pytest.fixture
def train_file(tmp_path):
    return write_reviews(tmp_path)


def test_rung_budgets_are_a_ninth_a_third_and_all_of_the_planned_steps():
    assert REDUCTION == 3
    assert rung_budgets(36) == [4, 12, 36] and rung_budgets(120) == [13, 40, 120]
    assert rung_budgets(12) == [4, 12]  # a ninth would be one step: left out
    assert rung_budgets(7) == [2, 7]  # SmolLM's eight-step tasks less the carve
    assert rung_budgets(2) == [2] and rung_budgets(1) == [1]


def test_every_rung_scores_on_the_same_capped_subset_of_the_carve(tmp_path, tiny_bert_dir, train_file, monkeypatch):
    from harness.run import race

    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    base = _bases(task, ("lora",))[0]
    first, last = race.rung_cell(base, 1e-3, 4, None), race.rung_cell(base, 1e-3, 36, "x")
    assert first.task.data.max_eval_samples == last.task.data.max_eval_samples == race.RACE_SCORE_ROWS
    monkeypatch.setattr(race, "RACE_SCORE_ROWS", 5)  # the tests' carve has more than 5 rows: scored on 5
    cell = race.rung_cell(base, 1e-3, 4, None)
    spec = load_task_data(cell.task, ("text", "label"))
    assert len(spec.eval) == 5 and spec.record["score_on"] == "validation"
    capped = write_split_task(tmp_path, tiny_bert_dir, train_file, "capped", "").read_text()
    (tmp_path / "capped.toml").write_text(
        capped.replace("max_train_samples = 64", "max_train_samples = 64\nmax_eval_samples = 3")
    )
    low = race.rung_cell(_bases(tmp_path / "capped.toml", ("lora",))[0], 1e-3, 4, None)
    assert low.task.data.max_eval_samples == 3  # the task's own lower cap stands


# ---------------------------------------------------------------- the race's logic, on written results


def _fake_runner(run_dir, scores, memory=None, at_steps=None, flat_loss_seeds=()):
    """A `run` that writes a result per cell instead of training: the score scores[(strategy, rate)]
    plus a thousandth per training step (longer rungs score a little higher), items of 200 answers, and
    a learning verdict: learned from 0.57 up (beyond noise of a 0.5 majority share on 200 items); a
    cell of a seed in `flat_loss_seeds` has a flat training loss and no trivial reference (as `chat`)."""
    from harness.results.items import CORRECT, write_items
    from harness.results.learning import reason, verdict
    from harness.run.cell import search_record

    ran = []

    def run(cells):
        for cell in cells:
            ran.append(cell.label + f"@{cell.task.training.stop_after_steps}")
            rate = cell.task.training.learning_rate
            steps = cell.task.training.stop_after_steps or 36
            flat = cell.seed in flat_loss_seeds and cell.strategy != "none"
            value = (at_steps or {}).get(
                (cell.strategy, rate, steps), scores.get((cell.strategy, rate), 0.5) + steps / 1000
            )
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
                search=search_record(cell),
                training={"steps": steps, "steps_this_cell": steps},
                timing={"load_seconds": 1.0, "train_seconds": steps * 0.5, "eval_seconds": 2.0},
                preflight={"total_bytes": (memory or {}).get(cell.strategy, GiB)},
                learning=verdict(
                    [] if value >= 0.57 else [reason("below_reference", "at the majority share")],
                    [reason("loss_flat", "the loss hardly moved")] if flat else [],
                    ["the majority class"] if value >= 0.57 and not flat else [],
                    {},
                ),
            )
            write_result(run_dir, result)

    return run, ran


def _bases(task, strategies=("frozen-lower", "lora")):
    return [c for c in load_matrix([task], strategies=strategies, seeds=1).cells]


def test_the_race_and_its_finals_use_the_tasks_own_search_rates_and_carve(tmp_path, tiny_bert_dir, train_file):
    """A task's `[search] learning_rates` and `validation` are the full path's grid and carve: pick races
    those rates on that carve and its finals train on the same rows."""
    body = "\n[search]\nlearning_rates = [2e-3, 5e-4]\nvalidation = 0.25\n"
    task = write_split_task(tmp_path, tiny_bert_dir, train_file, strategies_body=body)
    run, ran = _fake_runner(tmp_path / "run", {("lora", 2e-3): 0.7, ("lora", 5e-4): 0.6})
    rungs: list = []
    state = run_race(_bases(task, ("lora",)), lambda cells: (rungs.extend(cells), run(cells)), tmp_path / "run")
    assert sorted({e.rate for e in state.scores}) == [5e-4, 2e-3]
    assert sorted(r for r in ran if r.endswith("@36")) == ["raced/lora/seed0/trial lr=0.002@36"]
    assert {c.task.data.validation for c in rungs} == {0.25}
    leader, p_values = contenders(state, tmp_path / "run", True)
    finals = final_cells(_bases(task, ("lora",)), state, leader, p_values, True, range(3))
    assert {(c.task.training.learning_rate, c.task.data.validation) for c in finals} == {(2e-3, 0.25)}


def test_the_race_keeps_the_best_third_of_each_strategys_rates_and_never_drops_a_strategy(
    tmp_path, tiny_bert_dir, train_file
):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {("frozen-lower", r): v for r, v in zip((3e-5, 1e-4, 3e-4, 1e-3), (0.60, 0.70, 0.80, 0.65))}
    scores |= {("lora", r): v for r, v in zip((3e-4, 1e-3, 3e-3, 1e-2), (0.50, 0.55, 0.52, 0.40))}
    run, ran = _fake_runner(tmp_path / "run", scores)
    state = run_race(_bases(task), run, tmp_path / "run")
    assert state.budgets == [4, 12, 36]
    assert len([r for r in ran if r.endswith("@4")]) == 8  # every pair at a ninth
    assert sorted(r for r in ran if r.endswith("@36")) == [  # each strategy's best third: one of four rates
        "raced/frozen-lower/seed0/trial lr=0.0003@36",
        "raced/lora/seed0/trial lr=0.001@36",
    ]
    assert not any(r.endswith("@12") for r in ran)  # one pair per strategy left: the third decides nothing
    assert state.cells[Entry("lora", 1e-3)].keys() == {4, 36}
    assert state.pruned[Entry("lora", 1e-2)] == 4 and Entry("lora", 1e-3) not in state.pruned
    assert state.best("lora", True) == (Entry("lora", 1e-3), pytest.approx(0.586))
    top = {e.strategy: cells[36] for e, cells in state.cells.items() if 36 in cells}
    leader, p_values = contenders(state, tmp_path / "run", True)
    assert leader == "frozen-lower" and p_values["lora"] < 0.05  # 0.836 against 0.586 on 200 items
    finals = final_cells(_bases(task), state, leader, p_values, True)
    more = final_cells(_bases(task), state, leader, p_values, True, range(1, 3), {"lora"})
    assert sorted(
        (c.strategy, c.seed, c.task.training.learning_rate, c.task.training.resume_from) for c in finals + more
    ) == [
        ("frozen-lower", 0, 3e-4, top["frozen-lower"]),  # the race's own full run, evaluated on eval
        ("lora", 0, 1e-3, top["lora"]),
        ("lora", 1, 1e-3, None),  # more seeds train afresh at the race's rate
        ("lora", 2, 1e-3, None),
    ]
    assert all(
        c.task.training.stop_after_steps is None and c.task.data.score_on == "eval" and not c.is_trial
        for c in finals + more
    )  # full budget, on the race's rows, scored on eval


def _pick_on_fake_cells(tmp_path, tiny_bert_dir, train_file, monkeypatch, scores, memory, flat_loss_seeds=()):
    """pick over full, frozen-lower and lora with every cell written by `_fake_runner`: the record and
    the finals run, as 'strategy/seedN'."""
    from types import SimpleNamespace

    from harness.report.recommend import Constraints
    from harness.run import pick as pick_module

    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    run, ran = _fake_runner(tmp_path / "run", scores, memory, flat_loss_seeds=flat_loss_seeds)

    def run_matrix(matrix, run_dir, stream, executor=None):
        run(list(matrix.cells))
        return [SimpleNamespace(cell=c) for c in matrix.cells]

    monkeypatch.setattr(pick_module, "run_matrix", run_matrix)
    matrix = load_matrix([task], strategies=("full", "frozen-lower", "lora"), seeds=1)
    record = pick_module.pick(matrix, tmp_path / "run", Constraints())
    finals = sorted(r.split("/")[1] + "/" + r.split("/")[2].split("@")[0] for r in ran if "trial" not in r)
    return record, finals


def test_the_finals_seed_the_pick_and_its_runner_up_until_both_have_three_seeds(
    tmp_path, tiny_bert_dir, train_file, monkeypatch
):
    """Full (0.836 on eval) and frozen-lower (0.826) tie on one seed of 200 items, lora (0.636) does not:
    frozen-lower is picked for its memory against full, so those two get three seeds, which separate
    them (six discordant items, all full's); lora keeps its one. `none` runs at each of those seeds: a
    seed-2 cell whose loss stayed flat and that beats no trivial reference (as on `chat`) learned, since
    it beats the untuned cell of its own seed, and the flat loss is a warning."""
    scores = {("full", r): 0.80 for r in (1e-5, 3e-5, 1e-4, 3e-4)}
    scores |= {("frozen-lower", r): 0.79 for r in (3e-5, 1e-4, 3e-4, 1e-3)}
    scores |= {("lora", r): 0.60 for r in (3e-4, 1e-3, 3e-3, 1e-2)}
    memory = {"full": 2 * GiB, "frozen-lower": GiB, "lora": GiB / 2, "none": GiB / 4}
    record, finals = _pick_on_fake_cells(tmp_path, tiny_bert_dir, train_file, monkeypatch, scores, memory, (2,))
    assert finals == [
        "frozen-lower/seed0",
        "frozen-lower/seed1",
        "frozen-lower/seed2",
        "full/seed0",
        "full/seed1",
        "full/seed2",
        "lora/seed0",
        "none/seed0",
        "none/seed1",  # each seed's untuned reference for the learning checks
        "none/seed2",
    ]
    assert record["seeded"] == ["frozen-lower", "full"] and record["pick"] == "full"
    cells = harness.load_results(tmp_path / "run")
    flat = cells[(cells["strategy"] != "none") & (cells["seed"] == 2)]
    assert len(flat) == 2 and flat["learned"].all()
    assert flat["learning_detail"].str.startswith("warning, loss_flat").all()
    assert "finals: frozen-lower, full 3 seeds on eval" in "\n".join(record["answer"])


def test_a_runner_up_the_race_beat_beyond_noise_keeps_one_seed(tmp_path, tiny_bert_dir, train_file, monkeypatch):
    """Full leads on validation (0.836 of 200 items) and frozen-lower (0.736) falls short of it beyond
    noise: full is picked and gets three seeds; frozen-lower, its runner-up on eval, keeps its one,
    as lora (0.636) does."""
    scores = {("full", r): 0.80 for r in (1e-5, 3e-5, 1e-4, 3e-4)}
    scores |= {("frozen-lower", r): 0.70 for r in (3e-5, 1e-4, 3e-4, 1e-3)}
    scores |= {("lora", r): 0.60 for r in (3e-4, 1e-3, 3e-3, 1e-2)}
    memory = {"full": 2 * GiB, "frozen-lower": GiB, "lora": GiB / 2, "none": GiB / 4}
    record, finals = _pick_on_fake_cells(tmp_path, tiny_bert_dir, train_file, monkeypatch, scores, memory)
    assert "race: leader on validation full; within validation noise of it: none" in record["answer"]
    assert finals == [
        "frozen-lower/seed0",
        "full/seed0",
        "full/seed1",
        "full/seed2",
        "lora/seed0",
        "none/seed0",
        "none/seed1",
        "none/seed2",
    ]
    assert record["seeded"] == ["full"] and record["pick"] == "full"
    assert "finals: full 3 seeds on eval" in "\n".join(record["answer"])


def test_a_pair_that_falls_between_rungs_gives_its_place_to_the_next_best_rate(tmp_path, tiny_bert_dir, train_file):
    """LoRA at 1e-2 leads after 4 steps (0.90) and collapses by 36 (0.30, beyond noise on 200 items): the
    next best rate at 4 steps (1e-3) continues from its checkpoint to the full budget and is lora's best."""
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {("lora", r): v for r, v in zip((3e-4, 1e-3, 3e-3, 1e-2), (0.50, 0.55, 0.52, 0.90))}
    run, ran = _fake_runner(tmp_path / "run", scores, at_steps={("lora", 1e-2, 36): 0.30})
    state = run_race(_bases(task, ("lora",)), run, tmp_path / "run")
    assert sorted(r for r in ran if r.endswith("@36")) == [
        "raced/lora/seed0/trial lr=0.001@36",
        "raced/lora/seed0/trial lr=0.01@36",
    ]
    fall = state.replaced[Entry("lora", 1e-2)]
    assert (fall["why"], fall["from_steps"], fall["after_steps"], fall["was"], fall["score"]) == (
        "fell",
        4,
        36,
        0.904,
        0.30,
    )
    assert fall["p_value"] < 0.05
    assert state.best("lora", True) == (Entry("lora", 1e-3), pytest.approx(0.586))
    assert Entry("lora", 1e-3) not in state.pruned and state.pruned[Entry("lora", 1e-2)] == 36
    assert state.record()["pairs"][3]["replaced"] == fall


def test_a_pair_that_learned_by_the_full_budget_keeps_its_place_however_little_it_gained(
    tmp_path, tiny_bert_dir, train_file
):
    """LoRA at 1e-2 leads after 4 steps (0.904) and reaches 0.910 at 36, one more item right of 200: no
    gain beyond noise, but its learning checks pass, so no other rate runs to the full budget (a small
    carve cannot show a gain; ToMi's race sent 12 of 16 pairs to the full budget when it asked for one)."""
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {("lora", r): v for r, v in zip((3e-4, 1e-3, 3e-3, 1e-2), (0.50, 0.55, 0.52, 0.90))}
    run, ran = _fake_runner(tmp_path / "run", scores, at_steps={("lora", 1e-2, 36): 0.91})
    state = run_race(_bases(task, ("lora",)), run, tmp_path / "run")
    assert not state.replaced and [r for r in ran if r.endswith("@36")] == ["raced/lora/seed0/trial lr=0.01@36"]


def test_a_strategy_that_learns_at_no_rate_is_tried_at_every_rate_of_its_grid(tmp_path, tiny_bert_dir, train_file):
    """Nothing learned after 4 steps (all at chance), nor after 36: each rate in turn goes to the full
    budget from its checkpoint, each fails its learning checks there, and the answer says that no
    rate learned."""
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {("lora", r): 0.5 for r in (3e-4, 1e-3, 3e-3, 1e-2)}
    at_chance = {("lora", r, 36): 0.5 for r in (3e-4, 1e-3, 3e-3, 1e-2)}
    run, ran = _fake_runner(tmp_path / "run", scores, at_steps=at_chance)
    state = run_race(_bases(task, ("lora",)), run, tmp_path / "run")
    assert len([r for r in ran if r.endswith("@36")]) == 4
    assert [why["why"] for why in state.replaced.values()] == ["not_learned"] * 4
    assert all(why["reasons"] == ["below_reference"] for why in state.replaced.values())
    assert state.best("lora", True) is not None  # the finals still run it: its learning checks say the rest


def test_a_memory_limit_drops_a_strategy_after_its_first_rung_and_says_why(tmp_path, tiny_bert_dir, train_file):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {(s, r): 0.5 + r for s in ("frozen-lower", "lora") for r in (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)}
    run, ran = _fake_runner(tmp_path / "run", scores, memory={"frozen-lower": 3 * GiB, "lora": GiB})
    state = run_race(_bases(task), run, tmp_path / "run", max_memory=2 * GiB)
    assert state.excluded == {"frozen-lower": "its measured peak (3.00 GiB) exceeds --max-memory (2.00 GiB)"}
    assert not any("frozen-lower" in r and r.endswith(("@12", "@36")) for r in ran)
    leader, _ = contenders(state, tmp_path / "run", True)
    assert leader == "lora"


def test_a_budget_stops_promoting_and_lists_what_did_not_run(tmp_path, tiny_bert_dir, train_file):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    scores = {(s, r): 0.5 + r for s in ("frozen-lower", "lora") for r in (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)}
    run, ran = _fake_runner(tmp_path / "run", scores)
    state = run_race(_bases(task), run, tmp_path / "run", budget_s=10.0)  # rung 0 alone takes 8 x 5 s
    assert state.stopped_by_budget and all(r.endswith("@4") for r in ran)
    assert sorted(state.not_run) == [
        "raced/frozen-lower/seed0/trial lr=0.001 (36 steps)",
        "raced/lora/seed0/trial lr=0.01 (36 steps)",
    ]


# ---------------------------------------------------------------- real cells


def test_a_rung_continued_from_its_checkpoint_is_the_unbroken_full_run(tmp_path, tiny_bert_dir, train_file):
    """Rungs are prefixes: stopped mid-epoch (6 of 36 steps), continued to an epoch's end (12), then to the
    end, the chain makes the unbroken run's losses, learning rates and predictions exactly."""
    from harness.run.cell import checkpoint_path
    from harness.run.race import rung_cell

    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    base = _bases(task, ("full",))[0]
    run_dir = tmp_path / "run"

    def run(cell):
        [outcome] = run_matrix(Matrix((cell,)), run_dir)
        assert outcome.status == "ok", outcome
        result = json.loads(cell_result_path(run_dir, cell.cell_id).read_text())
        return {**result, "item_rows": read_items(run_dir / "cells" / cell.cell_id / result["items"]["file"])}

    unbroken = run(rung_cell(base, 1e-3, 36, None))
    first = rung_cell(base, 1e-3, 6, None)
    assert run(first)["training"]["stopped_by"] == "stop_after_steps"
    second = rung_cell(base, 1e-3, 12, first.cell_id)
    run(second)
    last = run(rung_cell(base, 1e-3, 36, second.cell_id))
    assert last["training"]["resumed_at_step"] == 12 and last["training"]["steps_this_cell"] == 24
    assert last["training"]["loss_curve"] == unbroken["training"]["loss_curve"]
    assert last["training"]["lr_curve"] == unbroken["training"]["lr_curve"]
    assert last["primary_value"] == unbroken["primary_value"]
    assert last["item_rows"] == unbroken["item_rows"]
    assert checkpoint_path(run_dir / "cells", second.cell_id).is_file()


def test_a_final_evaluates_the_races_full_run_on_eval_with_its_training_figures(tmp_path, tiny_bert_dir, train_file):
    """Seed 0's final resumes the race's finished run with no step left: scored on the eval rows, it
    carries the training cell's peak memory and throughput, and says which cell measured them."""
    from harness.run.race import rung_cell

    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    base = _bases(task, ("lora",))[0]
    run_dir = tmp_path / "run"
    full_run = rung_cell(base, 1e-3, 36, None)
    final = resolve_cell(
        base,
        0,
        {
            "training.learning_rate": 1e-3,
            "data.validation": 0.2,
            "data.score_on": "eval",
            "training.resume_from": full_run.cell_id,
        },
    )
    assert not final.is_trial
    run_matrix(Matrix((full_run,)), run_dir)
    run_matrix(Matrix((final,)), run_dir)
    trained = json.loads(cell_result_path(run_dir, full_run.cell_id).read_text())
    result = json.loads(cell_result_path(run_dir, final.cell_id).read_text())
    assert result["status"] == "ok" and result["training"]["steps_this_cell"] == 0
    assert result["data"]["eval_rows"] == 40 and trained["data"]["eval_rows"] == 16  # eval, not the carve
    assert result["data"]["train_sha256"] == trained["data"]["train_sha256"]
    assert result["training_measured_in"] == full_run.cell_id
    assert result["memory"]["peak_bytes"] >= trained["memory"]["peak_bytes"]
    assert result["throughput"]["train_tokens_per_s"] == trained["throughput"]["train_tokens_per_s"]
    assert result["training"]["loss_curve"] == trained["training"]["loss_curve"]
    assert "train_seconds" not in result["timing"] or result["timing"]["train_seconds"] < 1.0


def test_a_resumed_cell_without_its_checkpoint_names_the_key(tmp_path, tiny_bert_dir, train_file):
    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    base = _bases(task, ("lora",))[0]
    cell = resolve_cell(base, 0, {"data.validation": 0.2, "training.resume_from": "0123456789abcdef"})
    [outcome] = run_matrix(Matrix((cell,)), tmp_path / "run")
    result = json.loads(cell_result_path(tmp_path / "run", cell.cell_id).read_text())
    assert outcome.status == "failed"
    assert "training.resume_from: no checkpoint of cell 0123456789abcdef" in result["error"]["message"]


def test_the_race_never_reads_eval_rows(tmp_path, tiny_bert_dir, train_file):
    """Every eval label of the split task scrambled: the same rung scores, the same pruning, the same leader."""
    task = write_split_task(tmp_path, tiny_bert_dir, train_file, strategies_body=TWO_RATES)
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
    scrambled = write_split_task(tmp_path / "scrambled", tiny_bert_dir, scrambled_file, strategies_body=TWO_RATES)

    def race(task_file, run_dir):
        matrix = load_matrix([task_file], strategies=("frozen-lower", "lora"), seeds=1)
        state = run_race(list(matrix.cells), lambda cells: run_matrix(matrix.__class__(tuple(cells)), run_dir), run_dir)
        scores = {(e.strategy, e.rate): s for e, s in state.scores.items()}
        return scores, dict(sorted((str(e), b) for e, b in state.pruned.items())), contenders(state, run_dir, True)[0]

    plain = race(task, tmp_path / "a")
    assert plain[1] and plain[2]  # pairs were dropped and a leader chosen: the decisions compared are real
    assert plain == race(scrambled, tmp_path / "b")


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
    first_rung = [o for o in outcomes if o.cell.task.training.stop_after_steps == 4]
    assert len(first_rung) == 4 and all(o.skipped for o in first_rung)  # read back, not run again
    full_budget = [o for o in outcomes if o.cell.task.training.stop_after_steps == 36]
    assert full_budget and not any(o.skipped for o in full_budget)  # run once, after the restart
    assert {o.cell.task.training.resume_from for o in full_budget} <= {o.cell.cell_id for o in first_rung}
    assert not (run_dir / "stale").exists()  # a rung of one rate never sets aside another rung's result
    assert state.best("lora", True) is not None


def test_the_full_path_estimate_scores_as_many_carve_rows_as_its_trials_would(tmp_path):
    """The race scores at most RACE_SCORE_ROWS rows of the carve, the full path's grid trials up to
    `[search] score_rows`: the estimate prices a validation row, not a rung's scoring, so a grid trial
    scoring 500 rows costs five times a rung's 100 (steps, loading and eval as measured)."""
    from types import SimpleNamespace

    from harness.run.race import RaceState, full_path_seconds

    run_dir = tmp_path / "run"
    measured = {  # cell id -> (steps, train s, load s, eval s, rows scored)
        "rung": (2, 2.0, 1.0, 4.0, 100),
        "full": (4, 8.0, 1.0, 4.0, 100),
        "final": (6, 12.0, 2.0, 6.0, 50),
    }
    for cell_id, (steps, train, load, scoring, rows) in measured.items():
        result = cell_result("t", "lora", 0, 0.8, memory=GiB, tokens_per_s=100.0)
        result.update(
            cell_id=cell_id,
            training={"steps": steps, "steps_this_cell": steps},
            timing={"load_seconds": load, "train_seconds": train, "eval_seconds": scoring},
            data={"eval_rows": rows},
        )
        write_result(run_dir, result)
    state = RaceState([2, 6], planned=6, cells={Entry("lora", 1e-3): {2: "rung", 6: "full"}})
    final = SimpleNamespace(cell_id="final", strategy="lora")
    cost = full_path_seconds(state, run_dir, [final], {"carve": 6, "full": 8}, {"lora": 4}, scored_rows=500)
    step, load = (1.0 + 2.0 + 2.0) / 3, (1.0 + 1.0 + 2.0) / 3
    assert cost["grid_search"] == pytest.approx(4 * (load + 6 * step + 500 * 0.04))
    assert cost["final_seeds"] == pytest.approx(3 * (load + 8 * step + 6.0))


def test_pick_runs_the_finals_and_prints_the_answer_with_its_cost(tmp_path, tiny_bert_dir, train_file, capsys):
    from harness.cli import main

    task = write_split_task(tmp_path, tiny_bert_dir, train_file, strategies_body=TWO_RATES)
    assert main(["pick", str(task), "--strategies", "lora", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "pick.json").read_text())
    assert record["pick"] == "lora" and out.startswith("pick lora (lr ")
    cost = record["cost"]
    assert cost["cell_seconds"]["race"] > 0 and cost["cell_seconds"]["finals"] > 0
    assert 0 < cost["ratio"] < 1 and f"{cost['ratio']:.2f}x" in out
    assert "race: leader on validation" in out
    assert len(record["race"]["pairs"]) == 2  # the task's [search] grid
    assert not list((tmp_path / "run" / "cells").glob("*/resume.pt"))  # no checkpoint outlives its use
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


def test_the_answer_says_which_pair_fell_and_that_another_rate_took_its_place():
    import pandas as pd

    from harness.report.recommend import Recommendation
    from harness.run.pick import _answer
    from harness.run.race import RaceState

    state = RaceState([6, 60], 60)
    fell, kept = Entry("adapter", 1e-2), Entry("adapter", 3e-4)
    state.scores = {fell: {6: 0.946, 60: 0.467}, kept: {6: 0.589, 60: 0.95}}
    state.replaced = {
        fell: {"why": "fell", "after_steps": 60, "from_steps": 6, "score": 0.467, "was": 0.946, "p_value": 1e-9}
    }
    rows = pd.DataFrame(
        [{"strategy": "adapter", "primary_metric": "macro_f1", "primary_value_mean": 0.95, "primary_value_std": 0.01}]
        + [{"strategy": "none", "primary_metric": "macro_f1", "primary_value_mean": 0.4, "primary_value_std": None}]
    ).assign(n=[3, 1], peak_memory_bytes_mean=[GiB, GiB], learned=[True, None])
    lines = _answer(Recommendation("spam", "adapter", "best"), rows, state, {}, "adapter", True, ["adapter"])
    assert lines[0].startswith("pick adapter (lr 0.0003): macro_f1 0.950")
    assert (
        "adapter at 0.01 fell on validation from 0.946 after 6 steps to 0.467 after 60 (p = 1e-09): "
        "the next best rate took its place"
    ) in lines


def test_the_answer_says_when_no_rate_of_a_strategy_learned():
    import pandas as pd

    from harness.report.recommend import Recommendation
    from harness.run.pick import _answer
    from harness.run.race import RaceState

    state = RaceState([6, 60], 60)
    entries = [Entry("lora", r) for r in (1e-3, 1e-2)]
    state.scores = {e: {6: 0.5, 60: 0.5} for e in entries}
    state.replaced = {
        e: {"why": "not_learned", "after_steps": 60, "score": 0.5, "reasons": ["below_reference", "loss_flat"]}
        for e in entries
    }
    rows = pd.DataFrame(
        [{"strategy": "lora", "primary_metric": "accuracy", "primary_value_mean": 0.5, "primary_value_std": 0.0}]
    ).assign(n=[1], peak_memory_bytes_mean=[GiB], learned=[False], learning_reasons=["below_reference"])
    lines = _answer(Recommendation("t", None, "no strategy learned"), rows, state, {}, "lora", True, [])
    assert (
        "lora at 0.001 did not learn on validation (0.500 after 60 steps: below_reference, loss_flat): "
        "the next best rate took its place" in lines
    )
    assert "lora: no rate learned on validation at the full budget (every rate of its grid tried)" in lines


def test_scoring_on_eval_without_a_carve_is_refused_naming_the_key(tmp_path, tiny_bert_dir, train_file):
    from harness.schema import ConfigError

    task = write_split_task(tmp_path, tiny_bert_dir, train_file)
    with pytest.raises(ConfigError) as refused:
        resolve_cell(_bases(task, ("lora",))[0], 0, {"data.score_on": "eval"})
    assert "score_on" in str(refused.value) and "set validation" in str(refused.value)
