"""Task and suite files: every mistake is reported at once, with file, line and key."""

from __future__ import annotations

import textwrap

import pytest

from harness.cli import main
from harness.config import ConfigError, load_matrix
from tests.helpers import write_task

BROKEN = """\
[task]
nmae = "typo"
scenario = "classification"

[model]
source = "package:no_such_model_pkg/model"

[data]
train = "{train}"
eval = "missing.jsonl"
fields = {{ txt = "review" }}

[metric]
names = ["acuracy", "macro_f1"]
primary = "f1"

[training]
epochs = "three"
batch_size = 0
learning_rate = -1.0

[trainig]
epochs = 2

[strategies.loraa]
r = 4

[strategies.lora]
rank = 8

[strategies.frozen-lower]
layers = 2
fraction = 0.5

[strategies.adapter]
placement = "middle"

[strategies.peft]
method = "LORAX"

[profiles.fast.training]
epochs = 1
"""

# (line, dotted key, words in the message) for every planted mistake
EXPECTED = [
    (2, "task.nmae", "unknown key (did you mean 'name'?)"),
    (1, "task.name", "required"),
    (6, "model.source", "not installed"),
    (10, "data.eval", "file not found"),
    (11, "data.fields.txt", "did you mean 'text'"),
    (14, "metric.names[0]", "did you mean 'accuracy'"),
    (15, "metric.primary", "not in metric.names"),
    (18, "training.epochs", "expected an integer"),
    (19, "training.batch_size", "must be >= 1"),
    (20, "training.learning_rate", "must be >= 0.0"),
    (22, "trainig", "did you mean 'training'"),
    (25, "strategies.loraa", "did you mean 'lora'"),
    (29, "strategies.lora.rank", "unknown key"),
    (32, "strategies.frozen-lower.layers", "not both"),
    (36, "strategies.adapter.placement", "must be one of"),
    (39, "strategies.peft.method", "unknown peft method"),
    (41, "profiles.fast", "unknown profile"),
]


@pytest.fixture
def broken(tmp_path, tiny_bert_dir):
    from tests.helpers import ROOT

    path = tmp_path / "broken.toml"
    path.write_text(BROKEN.format(train=ROOT / "tasks/data/sentiment/train.jsonl"), encoding="utf-8")
    return path


def test_every_mistake_is_reported_with_file_line_and_key(broken):
    with pytest.raises(ConfigError) as caught:
        load_matrix([broken])
    lines = str(caught.value).splitlines()
    for line, key, words in EXPECTED:
        prefix = f"{broken}:{line}: {key}:"
        matching = [text for text in lines if text.startswith(prefix)]
        assert matching, f"no problem reported for {prefix}\n" + "\n".join(lines)
        assert words in matching[0], matching[0]


def test_cli_prints_one_line_per_problem_and_exits_2_without_traceback(broken, capsys, tmp_path):
    out_dir = tmp_path / "run"
    code = main(["run", str(broken), "--out", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) >= len(EXPECTED)
    assert all(line.startswith(str(broken)) for line in err.strip().splitlines())
    assert not out_dir.exists(), "nothing may be run or written after a config error"


def test_syntax_error_names_the_line(tmp_path, capsys):
    path = tmp_path / "syntax.toml"
    path.write_text('[task]\nname = "x"\nscenario = classification\n', encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:3: TOML syntax error")


def test_wrong_table_types_and_unknown_scenario(tmp_path, tiny_bert_dir):
    path = write_task(tmp_path, "t", tiny_bert_dir)
    text = path.read_text().replace('scenario = "classification"', 'scenario = "clasification"')
    path.write_text("strategies = 5\n" + text)
    with pytest.raises(ConfigError) as caught:
        load_matrix([path])
    message = str(caught.value)
    assert "task.scenario: unknown scenario 'clasification' (did you mean 'classification'?)" in message
    assert "strategies: expected a table" in message


def test_unknown_strategy_on_the_command_line(tmp_path, tiny_bert_dir, capsys):
    path = write_task(tmp_path, "t", tiny_bert_dir)
    assert main(["run", str(path), "--strategies", "none,lorra", "--out", str(tmp_path / "r")]) == 2
    assert "strategies.lorra: unknown strategy 'lorra' (did you mean 'lora'?)" in capsys.readouterr().err


def test_layering_strategy_training_and_profiles(tmp_path, tiny_bert_dir):
    path = write_task(
        tmp_path,
        "t",
        tiny_bert_dir,
        body="""
        [strategies.full.training]
        learning_rate = 5e-5

        [profiles.smoke.training]
        batch_size = 2
        """,
    )
    cells = {c.strategy: c for c in load_matrix([path], strategies=("full", "lora"), profile="smoke").cells}
    assert cells["full"].task.training.learning_rate == 5e-5
    assert cells["lora"].task.training.learning_rate == 1e-3
    assert cells["full"].task.training.batch_size == 2  # the task's own profile table wins over the built-in 4
    assert cells["full"].task.training.max_steps == 2  # the built-in smoke profile
    assert cells["full"].task.data.max_train_samples == 16
    full = load_matrix([path], strategies=("full",), profile="full").cells[0]
    assert full.task.data.max_train_samples is None


def test_cell_ids_are_stable_and_config_sensitive(tmp_path, tiny_bert_dir):
    path = write_task(tmp_path, "t", tiny_bert_dir)
    first = [c.cell_id for c in load_matrix([path], seeds=2).cells]
    assert first == [c.cell_id for c in load_matrix([path], seeds=2).cells]
    assert len(set(first)) == len(first) == 10
    path.write_text(path.read_text().replace("learning_rate = 1e-3", "learning_rate = 2e-3"))
    assert set(first).isdisjoint(c.cell_id for c in load_matrix([path], seeds=2).cells)


def test_suite_selects_tasks_strategies_seeds_and_profile(tmp_path, tiny_bert_dir):
    write_task(tmp_path, "a", tiny_bert_dir)
    write_task(tmp_path, "b", tiny_bert_dir, data="spam", fields='{ text = "message" }')
    suites = tmp_path / "suites"
    suites.mkdir()
    suite = suites / "s.toml"
    suite.write_text(
        textwrap.dedent("""\
        [suite]
        name = "s"
        tasks = [".."]
        strategies = ["none", "lora"]
        seeds = 2
        profile = "smoke"
        """)
    )
    matrix = load_matrix([suite])
    assert sorted({(c.task.name, c.strategy, c.seed) for c in matrix.cells}) == [
        (t, s, n) for t in ("a", "b") for s in ("lora", "none") for n in (0, 1)
    ]
    assert {c.profile for c in matrix.cells} == {"smoke"}
    assert len(load_matrix([suite], strategies=("full",), seeds=1).cells) == 2  # the command line wins


def test_shipped_tasks_validate(capsys):
    from tests.helpers import ROOT

    suites = [str(ROOT / "tasks/suites" / name) for name in ("default.toml", "heldout.toml")]
    assert main(["validate", str(ROOT / "tasks"), str(ROOT / "tasks/generated"), *suites]) == 0
    out = capsys.readouterr().out
    assert "ok: 23 task(s) valid under every profile" in out  # the data check refuses none of them
    relaxed = [line for line in out.splitlines() if "relaxed by [data] checks" in line]
    assert [line.split(":")[0] for line in relaxed] == ["medical", "spam-generated"]


def test_non_utf8_files_and_non_table_profiles_are_one_line_errors(tmp_path, tiny_bert_dir, capsys):
    binary = tmp_path / "weights.toml"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    assert main(["validate", str(binary)]) == 2
    assert (
        capsys.readouterr().err.strip() == f"{binary}: not a UTF-8 text file (a TOML task or suite file was expected)"
    )
    path = write_task(tmp_path, "t", tiny_bert_dir)
    path.write_text("profiles = 1\n" + path.read_text())
    assert main(["validate", str(path)]) == 2
    assert "profiles: expected a table" in capsys.readouterr().err


def test_scenario_options_must_fit_model_kind_and_metrics(tmp_path, tiny_bert_dir):
    path = write_task(tmp_path, "t", tiny_bert_dir)
    text = path.read_text().replace('scenario = "classification"', 'scenario = "question_answering"')
    text = text.replace('["accuracy", "macro_f1"]', '["token_f1", "perplexity"]').replace(
        'fields = { text = "review", label = "sentiment" }', ""
    )
    path.write_text(text + '\n[scenario]\nstyle = "generative"\n\n[lm_eval]\ntasks = ["x"]\n')
    with pytest.raises(ConfigError) as caught:
        load_matrix([path])
    message = str(caught.value)
    assert "model.source: encoder models do not fit scenario 'question_answering'" in message
    assert "lm_eval: lm-eval evaluates causal or seq2seq models" in message
    path.write_text(
        path.read_text()
        .replace('style = "generative"', 'style = "extractive"')
        .replace('\n[lm_eval]\ntasks = ["x"]\n', "")
    )
    with pytest.raises(
        ConfigError,
        match=r"metric.names\[1\]: metric 'perplexity' does not apply here; use one "
        r"of bleu, chrf, distinct_1, distinct_2, exact_match, rouge1",
    ):
        load_matrix([path])  # extractive QA gives answer text but no loss on a reference
