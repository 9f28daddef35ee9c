"""Benchmarks reuse the tiny-model fixtures of the tests."""

from tests.conftest import tiny_bert_dir  # noqa: F401  (the fixture, shared with the tests)
