"""Shipped data is reproducible from its generator; local formats load."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.config import load_matrix
from harness.data import load_rows
from tests.helpers import ROOT, write_task


def test_generator_reproduces_the_committed_files(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", ROOT / "tasks/data/generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for path in generate.write_all(tmp_path):
        committed = ROOT / "tasks/data" / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), f"{committed} differs from its generator"


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_local_formats_and_field_mapping(tmp_path, tiny_bert_dir, suffix):
    rows = [{"review": f"text {i}", "sentiment": "positive" if i % 2 else "negative"} for i in range(10)]
    frame = pd.DataFrame(rows)
    for split in ("train", "eval"):
        path = tmp_path / f"{split}.{suffix}"
        {
            "csv": lambda p: frame.to_csv(p, index=False),
            "parquet": frame.to_parquet,
            "jsonl": lambda p: p.write_text("\n".join(json.dumps(r) for r in rows)),
        }[suffix](path)
    task_path = write_task(tmp_path, "t", tiny_bert_dir)
    task_path.write_text(
        task_path.read_text()
        .replace(str(ROOT / "tasks/data/sentiment/train.jsonl"), f"train.{suffix}")
        .replace(str(ROOT / "tasks/data/sentiment/eval.jsonl"), f"eval.{suffix}")
        .replace("max_train_samples = 64", "max_train_samples = 4")
    )
    task = load_matrix([task_path]).cells[0].task
    train, evaluation = load_rows(task, ("text", "label"))
    assert len(train) == 4 and len(evaluation) == 10
    assert evaluation[3] == {"text": "text 3", "label": "positive"}


def test_missing_column_is_a_clear_error(tmp_path, tiny_bert_dir):
    task_path = write_task(tmp_path, "t", tiny_bert_dir, fields='{ text = "body", label = "sentiment" }')
    task = load_matrix([task_path]).cells[0].task
    with pytest.raises(ValueError, match=r"missing fields text \(column 'body'\)"):
        load_rows(task, ("text", "label"))


def test_a_missing_value_is_an_error_naming_file_row_and_field(tmp_path, tiny_bert_dir):
    rows = [{"review": "good", "sentiment": "positive"}, {"review": "bad"}]
    for split in ("train", "eval"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    task_path = write_task(tmp_path, "t", tiny_bert_dir)
    task_path.write_text(
        task_path.read_text()
        .replace(str(ROOT / "tasks/data/sentiment/train.jsonl"), "train.jsonl")
        .replace(str(ROOT / "tasks/data/sentiment/eval.jsonl"), "eval.jsonl")
    )
    task = load_matrix([task_path]).cells[0].task
    with pytest.raises(ValueError, match=r"train.jsonl: row 2: field label \(column 'sentiment'\) is missing"):
        load_rows(task, ("text", "label"))


def test_csv_keeps_na_as_text(tmp_path):
    from harness.data import _read_local

    (tmp_path / "d.csv").write_text("text,label\nNA,1\n,0\n")
    assert _read_local(tmp_path / "d.csv") == [{"text": "NA", "label": 1}, {"text": "", "label": 0}]


# ---------------------------------------------------------------- the data card (harness.data.checks)


def test_token_figures_are_percentiles_of_the_uncut_lengths_against_max_length():
    from harness.data.checks import token_figures

    figures = token_figures(list(range(1, 101)), 90, "truncated")  # 1..100 tokens
    assert figures["tokens"] == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert figures["longer_rows"] == 10 and figures["longer_share"] == 0.1 and figures["max_length"] == 90
    assert token_figures([], 64, "truncated") == {}


def test_the_card_counts_near_duplicates_and_the_rows_transforms_dropped(tmp_path, tiny_bert_dir):
    from harness.data import data_card
    from harness.scenarios import SCENARIOS

    train = [{"review": f"Review number {i}!", "sentiment": "positive" if i % 2 else "negative"} for i in range(40)]
    train += [dict(train[0]), dict(train[1])]  # repeats: dropped by the transform
    evaluation = [{"review": "review NUMBER 3", "sentiment": "positive"}]  # near (case, punctuation) not exact
    evaluation += [{"review": f"another {i}", "sentiment": "negative" if i % 2 else "positive"} for i in range(9)]
    for name, rows in (("train", train), ("eval", evaluation)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = write_task(tmp_path, "card", tiny_bert_dir)
    text = task.read_text()
    for name in ("train", "eval"):
        text = text.replace(f"{ROOT}/tasks/data/sentiment/{name}.jsonl", str(tmp_path / f"{name}.jsonl"))
    task.write_text(text + '\n[[data.transforms]]\nname = "drop_duplicates"\ncolumn = "review"\n')
    spec = load_matrix([task]).cells[0].task
    card = data_card(spec, SCENARIOS.get("classification"))
    assert card is not None and card.errors == []
    figures = card.figures
    assert figures["train_rows"] == 40 and figures["eval_in_train"] == 0 and figures["eval_near_train"] == 1
    assert figures["labels"] == {"negative": 20, "positive": 20} and figures["majority_share"] == 0.5
    (dropped,) = figures["dropped"]
    assert (
        dropped["rows"] == 2 and dropped["of"] == 42 and dropped["transform"] == "data.transforms[0] (drop_duplicates)"
    )
    assert any(w.startswith("near-duplicates: 1 of 10 evaluation rows") for w in card.warnings)


def test_list_data_prints_each_tasks_card(tmp_path, tiny_bert_dir, capsys):
    from harness.cli import main

    task = write_task(tmp_path, "listed", tiny_bert_dir)
    assert main(["list", "--data", str(task)]) == 0
    out = capsys.readouterr().out
    assert "rows: 64 train, 48 eval" in out and "labels: " in out and "; majority " in out
    assert "tokens per row: p50 " in out and "longer than max_length = 64 (truncated)" in out
    assert "eval rows also in train: 0 whole rows" in out


def test_the_data_checks_levels_are_not_part_of_a_cells_identity(tmp_path, tiny_bert_dir):
    """Relaxing a check changes what the check says, not the rows a cell uses: same ids, same digests;
    the cell still receives the levels (its config carries them)."""
    plain = write_task(tmp_path, "same", tiny_bert_dir)
    relaxed_dir = tmp_path / "relaxed"
    relaxed_dir.mkdir()
    relaxed = write_task(relaxed_dir, "same", tiny_bert_dir)
    relaxed.write_text(
        relaxed.read_text().replace(
            "max_eval_samples = 48\n", 'max_eval_samples = 48\nchecks = { rare_class = "warn" }\n'
        )
    )
    (a,), (b,) = load_matrix([plain], strategies=("none",)).cells, load_matrix([relaxed], strategies=("none",)).cells
    assert a.cell_id == b.cell_id and a.config_digest == b.config_digest
    assert b.resolved()["task"]["data"]["checks"] == {"rare_class": "warn"}
