"""Property-based tests: arbitrary bytes as task and suite files, arbitrary JSON as result files. Never a
traceback: a file either loads or gives one-line errors naming it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config import ConfigError, load_matrix
from harness.results.io import ResultFileError, read_result

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(["task", "model", "data", "training", "metric", "suite", "search", "strategies", "scenario"])
TOML_VALUE = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(['"x"', '"classification"', "true", "[]", '["a"]', "{}", "1.5", '"package:nope/x"']),
)
TOML_TEXT = st.lists(
    st.tuples(
        KEYS,
        st.lists(
            st.tuples(
                st.sampled_from(["name", "scenario", "source", "names", "epochs", "tasks", "train", "seeds", "r", "x"]),
                TOML_VALUE,
            ),
            max_size=4,
        ),
    ),
    max_size=5,
).map(lambda tables: "\n".join(f"[{t}]\n" + "".join(f"{k} = {v}\n" for k, v in items) for t, items in tables))


def _loads_or_one_line_errors(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file.toml"
        path.write_bytes(content)
        try:
            load_matrix([path])
        except ConfigError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert "\n" not in str(problem) and str(problem).startswith(str(path))


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_a_task_file_never_raise_a_traceback(content):
    _loads_or_one_line_errors(content)


@SETTINGS
@given(TOML_TEXT)
def test_arbitrary_toml_tables_never_raise_a_traceback(text):
    _loads_or_one_line_errors(text.encode("utf-8"))


@SETTINGS
@given(JSON)
def test_arbitrary_json_as_a_result_file_loads_or_is_one_line(value):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cell.json"
        path.write_text(json.dumps(value))
        try:
            result = read_result(path)
        except ResultFileError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
        else:
            assert isinstance(result, dict) and {"cell_id", "task", "strategy", "seed", "status"} <= set(result)


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            ["cell_id", "task", "strategy", "seed", "status", "metrics", "error", "config", "details", "schema_version"]
        ),
        JSON,
        max_size=10,
    )
)
def test_result_like_json_loads_or_is_one_line(value):
    test_arbitrary_json_as_a_result_file_loads_or_is_one_line.hypothesis.inner_test(value)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_a_result_file_are_one_line_errors(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cell.json"
        path.write_bytes(content)
        try:
            read_result(path)
        except ResultFileError as exc:
            assert "\n" not in str(exc)
