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
