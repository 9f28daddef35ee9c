"""Hardening: unsafe models are refused, a half-written model cache is rebuilt, one writer per run folder."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time

import pytest

from harness.cli import main
from harness.config import ConfigError, load_matrix
from harness.models import COMPLETE, cache_entry_ready, gguf_cache_folder, materialize_gguf
from harness.results.io import read_results
from harness.run.lock import RunFolderBusy, run_folder_lock
from tests.helpers import ROOT, running_phase, write_task

# ---------------------------------------------------------------- unsafe models


def _model_folder(tmp_path, tiny_bert_dir, name: str):
    folder = tmp_path / name
    folder.mkdir()
    for item in tiny_bert_dir.iterdir():
        if item.suffix != ".safetensors":
            (folder / item.name).write_bytes(item.read_bytes())
    return folder


def test_a_model_asking_for_remote_code_is_refused_by_default(tmp_path, tiny_bert_dir):
    folder = _model_folder(tmp_path, tiny_bert_dir, "remote")
    (folder / "model.safetensors").write_bytes((tiny_bert_dir / "model.safetensors").read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "evil.Model"}}))
    task = write_task(tmp_path, "remote", folder)
    with pytest.raises(ConfigError, match=re.escape("asks for remote code (auto_map)")) as caught:
        load_matrix([task])
    assert "model.source" in str(caught.value) and "model.trust_remote_code = true" in str(caught.value)
    allowed = task.read_text().replace("max_length = 64", "max_length = 64\ntrust_remote_code = true")
    task.write_text(allowed)
    with pytest.raises(ConfigError, match="model.trust_remote_code: needs model.revision pinned"):
        load_matrix([task])


class CreatesAFile:
    """A pickle payload: loading it opens (creates) a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pickle_only_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    folder = _model_folder(tmp_path, tiny_bert_dir, "pickled")
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(CreatesAFile(marker)))
    task = write_task(tmp_path, "pickled", folder)
    with pytest.raises(ConfigError, match=re.escape("only pickle checkpoints here")) as caught:
        load_matrix([task])
    assert "pytorch_model.bin" in str(caught.value) and "model.allow_pickle = true" in str(caught.value)
    assert main(["run", str(task), "--strategies", "none", "--out", str(tmp_path / "run")]) == 2
    assert not marker.exists()


# ---------------------------------------------------------------- the model cache


def test_a_half_written_model_cache_entry_is_rebuilt_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBENCH_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "gguf"
    source.mkdir()
    (source / "m.gguf").write_bytes(b"GGUF")
    builds = []

    def build(folder, gguf_file, staging):
        builds.append(gguf_file)
        (staging / "config.json").write_text("{}")
        (staging / "model.safetensors").write_bytes(b"x" * 1000)

    target = gguf_cache_folder(str(source), "m.gguf")
    target.mkdir(parents=True)  # a conversion killed half-way by an older release: no marker
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"x" * 10)
    assert not cache_entry_ready(target)
    assert materialize_gguf(str(source), "m.gguf", build) == str(target)
    assert builds == ["m.gguf"] and cache_entry_ready(target) and (target / "model.safetensors").stat().st_size == 1000
    materialize_gguf(str(source), "m.gguf", build)
    assert builds == ["m.gguf"]  # a sealed entry is loaded, not rebuilt
    with open(target / "model.safetensors", "r+b") as handle:  # truncated later: the sizes no longer match
        handle.truncate(500)
    materialize_gguf(str(source), "m.gguf", build)
    assert builds == ["m.gguf", "m.gguf"] and json.loads((target / COMPLETE).read_text())["files"]["config.json"] == 2


# ---------------------------------------------------------------- one writer per run folder


def test_a_second_run_into_a_busy_folder_is_refused_in_one_line(tmp_path, tiny_bert_dir, capsys):
    task = write_task(tmp_path, "busy", tiny_bert_dir)
    with run_folder_lock(tmp_path / "run"):
        assert main(["run", str(task), "--out", str(tmp_path / "run")]) == 2
        with pytest.raises(RunFolderBusy):
            with run_folder_lock(tmp_path / "run", wait_s=0.3):
                pass
    err = capsys.readouterr().err
    assert "another tunebench run is writing into this folder" in err and f'"pid": {os.getpid()}' in err
    assert not (tmp_path / "run" / "cells").exists()


def test_two_concurrent_runs_on_one_folder_lose_and_duplicate_nothing(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = write_task(tmp_path, "twice", tiny_bert_dir)
    run_dir = tmp_path / "run"
    arguments = [
        "run",
        str(task),
        "--strategies",
        "none,lora",
        "--out",
        str(run_dir),
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while not ((run_dir / ".lock").exists() and (run_dir / ".lock").read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert main(arguments) == 2  # refused while the first one writes
    assert main([*arguments, "--wait", "120"]) == 0  # waits, then resumes: nothing left to run
    assert first.wait(timeout=120) == 0
    results = read_results(run_dir)
    assert sorted(r["strategy"] for r in results) == ["lora", "none"] and all(r["status"] == "ok" for r in results)


# ---------------------------------------------------------------- crashes


def _parses(run_dir) -> dict[str, str]:
    """Every file a run writes parses; returns the finished cells' result texts by file name."""
    finished = {}
    if (run_dir / "run.json").exists():
        json.loads((run_dir / "run.json").read_text())
    if (run_dir / "cells").is_dir():
        for result in read_results(run_dir):  # raises on a half-written or corrupt result
            if result["status"] == "ok":
                finished[result["cell_id"]] = (run_dir / "cells" / f"{result['cell_id']}.json").read_text()
        for items in (run_dir / "cells").glob("*/items.jsonl.gz"):
            from harness.results.items import read_items

            read_items(items)
    return finished


def _running(run_dir) -> list:
    """The folders of the cells that have started and have no result yet."""
    cells = run_dir / "cells"
    return [d for d in cells.iterdir() if d.is_dir() and not d.with_suffix(".json").exists()] if cells.is_dir() else []


def _cell_running(run_dir) -> bool:
    return bool(_running(run_dir))


def _wait_for(condition, runner, limit_s: float = 120) -> None:
    """Poll until `condition()` holds or the runner has exited (the limit only guards a hung runner)."""
    deadline = time.monotonic() + limit_s
    while not condition() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def test_killing_the_runner_at_many_moments_loses_and_reruns_nothing(tmp_path, tiny_bert_dir, monkeypatch):
    """SIGKILL the runner's whole process group again and again until its four cells are done. Each kill
    moment is a state of the run folder, not a wall-clock delay, so the test proves as much on a busy
    machine as on a quiet one: at once after start (lock, manifest, warm server), as soon as a cell is
    running, during a cell's training, during its evaluation, and just after a cell's result appeared
    (so every round of five finishes at least one cell)."""
    import itertools
    import signal

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    # a SIGKILLed runner cannot remove its multiprocessing temp folder: keep those out of the real /tmp
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    task = write_task(tmp_path, "killed", tiny_bert_dir)
    run_dir = tmp_path / "run"
    arguments = ["run", str(task), "--strategies", "none,full", "--seeds", "2", "--out", str(run_dir)]
    moments = {
        "start": lambda: True,
        "cell": lambda: _cell_running(run_dir),
        "train": lambda: running_phase(run_dir) == "train",
        "eval": lambda: running_phase(run_dir) == "eval",
        "result": lambda: len(_parses(run_dir)) > len(finished),
    }
    finished: dict[str, str] = {}
    kills: dict[str, int] = dict.fromkeys(moments, 0)
    mid_cell = 0
    for rounds, moment in enumerate(itertools.cycle(moments)):
        if len(finished) == 4:
            break
        assert rounds < 50, "four cells never finished"
        runner = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", *arguments],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_for(moments[moment], runner)
        if runner.poll() is None:
            mid_cell += _cell_running(run_dir)
            os.killpg(runner.pid, signal.SIGKILL)  # the whole process group
            kills[moment] += 1
        runner.wait()
        now = _parses(run_dir)
        assert all(now[cell_id] == text for cell_id, text in finished.items() if cell_id in now), "re-ran a cell"
        assert finished.keys() <= now.keys(), "lost a finished cell"
        finished = now
    assert all(kills.values()) and mid_cell >= 3, (kills, mid_cell)  # every kind of moment was hit
    assert main(arguments) == 0  # a last resume has nothing left to run
    final = _parses(run_dir)
    assert len(final) == 4 and all(final[cell_id] == text for cell_id, text in finished.items())


def test_ctrl_c_stops_the_cell_records_nothing_false_and_says_how_to_resume(tmp_path, tiny_bert_dir, monkeypatch):
    import signal

    import psutil

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    body = "\n[profiles.default.training]\nepochs = 12\n"  # the second cell runs long enough to be interrupted
    task = write_task(tmp_path, "interrupted", tiny_bert_dir, body=body)
    run_dir = tmp_path / "run"
    arguments = ["run", str(task), "--strategies", "none,full,lora", "--out", str(run_dir)]
    runner = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *arguments],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background CI shell ignores SIGINT
    )
    lines = []
    for line in runner.stderr:  # wait for the first cell to finish, then press Ctrl-C during the second
        lines.append(line)
        if line.startswith("[1/3]"):
            break
    _wait_for(lambda: running_phase(run_dir) == "train", runner)  # the second cell trains: a state, not a delay
    cells = [p for p in psutil.Process(runner.pid).children(recursive=True)]
    runner.send_signal(signal.SIGINT)
    rest = runner.stderr.read()
    assert runner.wait(timeout=60) == 130
    assert "interrupted: the running cell was stopped and nothing was recorded for it" in rest
    assert f"Resume with: tunebench run {task} --strategies none,full,lora --out {run_dir}" in rest
    _, alive = psutil.wait_procs(cells, timeout=5)  # the cell is killed at once; a warm server follows its runner
    assert cells and not any(p.status() != psutil.STATUS_ZOMBIE for p in alive)
    results = read_results(run_dir)
    assert [r["status"] for r in results] == ["ok"]  # the stopped cell left no result, true or false
    assert main(arguments) == 0 and len(read_results(run_dir)) == 3


# ---------------------------------------------------------------- resource guards


@pytest.mark.parametrize(
    ("old", "new"), [("max_length = 64", "max_length = 10_000_000"), ("batch_size = 16", "batch_size = 100000")]
)
def test_absurd_sizes_are_refused_before_anything_is_allocated(tmp_path, tiny_bert_dir, old, new, monkeypatch):
    """The rule, not this machine: RAM is set to 16 GiB, then to 1 PiB, where the batch-size case fits."""
    import types

    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(total=16 * 2**30))
    task = write_task(tmp_path, "absurd", tiny_bert_dir)
    task.write_text(task.read_text().replace(old, new))
    with pytest.raises(ConfigError, match="pre-flight memory estimate .* exceeds this machine's memory") as caught:
        load_matrix([task], strategies=("full",))
    (problem,) = caught.value.problems
    assert problem.path == str(task) and "lower model.max_length or training.batch_size" in problem.message
    assert "exceeds this machine's memory (16 GiB)" in problem.message
    assert main(["validate", str(task)]) == 2
    if old.startswith("batch_size"):  # about 80 GiB: it fits a larger machine (10M tokens fit none)
        monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(total=2**50))
        assert load_matrix([task], strategies=("full",)).cells


def test_a_cell_memory_limit_is_the_bound_when_set(tmp_path, tiny_bert_dir):
    task = write_task(tmp_path, "bounded", tiny_bert_dir)
    suite = tmp_path / "suite.toml"
    suite.write_text(f'[suite]\nname = "s"\ntasks = ["{task.name}"]\nstrategies = ["full"]\ncell_memory_limit_mb = 1\n')
    with pytest.raises(ConfigError, match=re.escape("exceeds the cell memory limit (1 MiB)")):
        load_matrix([suite])


def test_the_activation_estimate_is_the_papers_formula_by_hand():
    """Korthikanti et al.: s*b*h*(34 + 5as/h) bytes per block with 16-bit activations, twice that in fp32,
    plus the logits (b*s*vocab*4 bytes)."""
    from harness.measure.preflight import estimate

    shape = {"hidden": 8, "blocks": 2, "heads": 4, "intermediate": 32, "vocab": 10}
    block = 16 * 2 * (34 * 8 + 5 * 4 * 16)  # s = 16, b = 2: 18,944 bytes per block in 16 bits
    assert block == 18_944
    assert estimate(shape, 1000, 1000, 2, 16, logits=False).activations_bytes == 2 * block * 2  # 2 blocks, fp32
    assert estimate(shape, 1000, 1000, 2, 16, precision="bf16", logits=False).activations_bytes == 2 * block
    assert estimate(shape, 1000, 1000, 2, 16).activations_bytes == 2 * block * 2 + 2 * 16 * 10 * 4
    assert estimate(shape, 1000, 0, 2, 16, logits=False).activations_bytes == block * 2  # evaluation: one block
    checkpointed = estimate(shape, 1000, 1000, 2, 16, gradient_checkpointing=True, logits=False)
    assert checkpointed.activations_bytes == block * 2 + 2 * (16 * 2 * 8 * 4)  # one block + each block's input
    total = estimate(shape, 1000, 10, 2, 16).record()["total_bytes"]
    assert total == 4 * 1000 + 4 * 10 + 8 * 10 + 2 * block * 2 + 2 * 16 * 10 * 4  # weights, grads, AdamW, activations


def test_a_causal_decoders_activations_are_counted_by_what_trains_by_hand():
    """Values a decoder block saves per token (SAVED_PER_TOKEN): full 9h + 2kv + 4i with a gated MLP,
    a frozen base (LoRA) 5h + 2kv + 3i, adapters 8h + 2kv + 3i; frozen-lower only over its trained blocks."""
    from harness.measure.preflight import estimate, model_shape

    config = {"hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2}
    shape = model_shape({**config, "intermediate_size": 16, "vocab_size": 10, "hidden_act": "silu"})
    assert (shape["kv_hidden"], shape["gated"]) == (4, 1)
    tokens, logits = 2 * 16, 2 * 16 * 10 * 4  # b = 2, s = 16; fp32 logits once
    full = estimate(shape, 1000, 1000, 2, 16, saved="full").activations_bytes
    assert full == 4 * tokens * (9 * 8 + 2 * 4 + 4 * 16) * 4 + logits  # 4 blocks, fp32
    lora = estimate(shape, 1000, 10, 2, 16, saved="frozen_base").activations_bytes
    assert lora == 4 * tokens * (5 * 8 + 2 * 4 + 3 * 16) * 4 + logits
    adapter = estimate(shape, 1000, 10, 2, 16, precision="bf16", saved="adapter").activations_bytes
    assert adapter == 4 * tokens * (8 * 8 + 2 * 4 + 3 * 16) * 2 + logits  # 16-bit values
    upper = estimate(shape, 1000, 500, 2, 16, saved="full", trained_blocks=2).activations_bytes
    assert upper == 2 * tokens * (9 * 8 + 2 * 4 + 4 * 16) * 4 + logits
    plain = model_shape({**config, "intermediate_size": 16, "hidden_act": "gelu_new"})  # GPT-2 style MLP
    assert estimate(plain, 1000, 1000, 2, 16, saved="full", logits=False).activations_bytes == (
        4 * tokens * (9 * 8 + 2 * 4 + 2 * 16) * 4
    )


def test_each_result_records_the_estimate_next_to_the_measured_peak(tmp_path, tiny_bert_dir, monkeypatch):
    import harness
    from harness.measure.preflight import estimate, model_shape
    from harness.run.executor import run_one

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    matrix = load_matrix([write_task(tmp_path, "estimated", tiny_bert_dir)], strategies=("full",))
    assert run_one(matrix.cells[0], tmp_path / "run", matrix) == "ok"
    (result,) = read_results(tmp_path / "run")
    config = json.loads((tiny_bert_dir / "config.json").read_text())
    total = result["params"]["total"]
    rows, seq_len = result["preflight"]["input_shape"]  # the largest batch the data can make, packed
    assert 0 < rows <= 16 and 0 < seq_len <= 64  # packing puts a batch's 16 rows into as many or fewer
    precision = result["training"]["precision"]  # fp32 on a CPU, bf16 by default on a GPU
    expected = estimate(model_shape(config), total, total, rows, seq_len, precision, logits=False)
    assert result["preflight"]["total_bytes"] == expected.total_bytes
    assert result["preflight"]["optimizer_bytes"] == 8 * total
    row = harness.load_results(tmp_path / "run").iloc[0]
    assert row["memory_estimate_bytes"] == expected.total_bytes and row["peak_memory_bytes"] > 0
    breakdown = result["memory"]["breakdown"]  # what the estimate predicts, measured from the tensors
    assert row["training_tensor_bytes"] == breakdown["tensors_bytes"] > 0
    assert result["preflight"]["gradients_bytes"] == breakdown["gradients_bytes"]
    assert result["preflight"]["optimizer_bytes"] == breakdown["optimizer_state_bytes"]


def test_a_full_disk_is_a_clear_error_and_the_run_resumes(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    import errno

    import harness.results.io as results_io

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = write_task(tmp_path, "full", tiny_bert_dir)
    arguments = ["run", str(task), "--strategies", "none", "--out", str(tmp_path / "run")]
    real = results_io.write_json_atomic

    def disk_full(path, payload):
        if path.name == "request.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, payload)

    monkeypatch.setattr(results_io, "write_json_atomic", disk_full)
    monkeypatch.setattr("harness.run.executor.write_json_atomic", disk_full)
    assert main(arguments) == 1
    err = capsys.readouterr().err
    assert "disk full while writing" in err and "request.json" in err and f"--out {tmp_path / 'run'}" in err
    assert not list((tmp_path / "run" / "cells").glob("**/*.tmp"))  # nothing half-written
    monkeypatch.setattr("harness.run.executor.write_json_atomic", real)
    assert main(arguments) == 0 and len(read_results(tmp_path / "run")) == 1
