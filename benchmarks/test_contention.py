"""The contention mark on a quiet machine: a tiny cell run alone gets none. Opt-in (it needs nothing else
busy on the CPU; `make test` checks the rule with injected CPU counters and the mark beside busy loops).

Run: .venv/bin/python -m pytest benchmarks/test_contention.py -s
"""

from __future__ import annotations

import pytest

from harness.config import load_matrix
from harness.measure.contention import CONTENDED_SHARE, others_share
from harness.run.cell import run_cell
from tests.helpers import write_task


def test_a_cell_alone_on_a_quiet_machine_gets_no_contention_mark(tmp_path, tiny_bert_dir):
    if (share := others_share(1.0)) > CONTENDED_SHARE:
        pytest.fail(f"the machine is not quiet: other processes use {share:.0%} of the CPU; run this alone")
    body = "\n[profiles.default.training]\nepochs = 4\n"  # a train phase of a few seconds
    cell = load_matrix([write_task(tmp_path, "alone", tiny_bert_dir, body=body)], strategies=("full",)).cells[0]
    alone = run_cell(cell, tmp_path / "alone")["contention"]
    assert alone["contended"] is False, alone
