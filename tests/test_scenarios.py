"""Every strategy on every scenario kind, with tiny models, run in process through the cell pipeline."""

from __future__ import annotations

import math
import textwrap

import pytest

from harness.config import load_matrix
from harness.run.cell import run_cell
from tests.helpers import ROOT

DATA = ROOT / "tasks" / "data"

# name -> (scenario, model fixture, data folder, [scenario] table, [data] fields, metrics)
SCENARIOS = {
    "classification": (
        "classification",
        "tiny_bert_dir",
        "news",
        "",
        '{ text = "headline", label = "topic" }',
        ["accuracy", "macro_f1"],
    ),
    "qa-extractive": (
        "question_answering",
        "tiny_bert_dir",
        "squad",
        'style = "extractive"\ndoc_stride = 16',
        "{}",
        ["exact_match", "token_f1"],
    ),
    "qa-generative": (
        "question_answering",
        "tiny_llama_dir",
        "openqa",
        'style = "generative"',
        "{}",
        ["exact_match", "token_f1"],
    ),
    "summarization-causal": (
        "generation",
        "tiny_llama_dir",
        "summarization",
        'instruction = "Summarise in one sentence."',
        '{ input = "document", target = "summary" }',
        ["rouge1", "rouge2", "rougeL"],
    ),
    "summarization-seq2seq": (
        "generation",
        "tiny_t5_dir",
        "summarization",
        "",
        '{ input = "document", target = "summary" }',
        ["rougeL", "perplexity"],
    ),
    "creative": (
        "generation",
        "tiny_llama_dir",
        "creative",
        "",
        '{ input = "prompt", target = "story" }',
        ["perplexity", "distinct_1", "distinct_2", "rougeL"],
    ),
    "dialogue-multi": (
        "dialogue",
        "tiny_llama_dir",
        "chat",
        'turns = "multi"',
        "{}",
        ["perplexity", "chrf", "bleu", "rougeL"],
    ),
    "dialogue-single-seq2seq": (
        "dialogue",
        "tiny_t5_dir",
        "customer_service",
        'turns = "single"',
        '{ input = "customer", target = "reply" }',
        ["chrf", "rougeL"],
    ),
    "domain-medical": (
        "domain",
        "tiny_llama_dir",
        "medical",
        "",
        '{ input = "question", target = "answer" }',
        ["rougeL", "token_f1", "perplexity"],
    ),
}
STRATEGIES = ("none", "full", "frozen-lower", "adapter", "lora")


def write_scenario_task(folder, name: str, model_dir, max_length: int = 64):
    scenario, _, data, options, fields, metrics = SCENARIOS[name]
    domain = '\ndomain = "medical"' if scenario == "domain" else ""
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [task]
        name = "{name}"
        scenario = "{scenario}"{domain}

        [model]
        source = "{model_dir}"
        max_length = {max_length}

        [data]
        train = "{DATA / data / "train.jsonl"}"
        eval = "{DATA / data / "eval.jsonl"}"
        fields = {fields}
        max_train_samples = 16
        max_eval_samples = 6

        [metric]
        names = {metrics}

        [training]
        epochs = 1
        batch_size = 8
        learning_rate = 1e-3
        measure_warmup_steps = 0
        save_weights = false

        [generation]
        max_new_tokens = 6
        keep_examples = 2
        """)
        + (f"\n[scenario]\n{options}\n" if options else ""),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_strategy_runs_on_every_scenario(name, request, tmp_path):
    model_dir = request.getfixturevalue(SCENARIOS[name][1])
    task_path = write_scenario_task(tmp_path, name, model_dir)
    cells = load_matrix([task_path], strategies=STRATEGIES).cells
    assert [c.strategy for c in cells] == list(STRATEGIES)
    for cell in cells:
        result = run_cell(cell, tmp_path / cell.cell_id)
        metrics = result["metrics"]
        assert set(metrics) == set(SCENARIOS[name][5]), (cell.label, metrics)
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), (cell.label, metrics)
        assert result["throughput"]["eval_tokens_per_s"] is None or result["throughput"]["eval_tokens_per_s"] > 0
        trainable = result["params"]["trainable"]
        assert (trainable == 0) == (cell.strategy == "none"), (cell.label, trainable)
        if cell.strategy != "none":
            assert result["training"]["steps"] == 2
        _check_items(result, tmp_path / cell.cell_id)
        if name != "classification":
            assert len(result["details"]["examples"]) == 2 and {"input", "reference", "prediction"} <= set(
                result["details"]["examples"][0]
            )
        else:
            assert sum(map(sum, result["details"]["confusion_matrix"]["counts"])) == 6


def _check_items(result, cell_dir):
    """The per-item file: one line per eval item, whose figures give back the primary metric."""
    from harness.results.items import read_items

    record, primary = result["items"], result["primary_metric"]
    items = read_items(cell_dir / record["file"])
    assert record["n"] == len(items) == 6 and record["metric"] == primary
    assert all({"id", "prediction", "reference"} <= set(item) for item in items)
    assert [item["id"] for item in items] == list(range(6))
    if primary == "perplexity":  # per item: mean NLL per target token; the corpus figure weighs by tokens
        assert record["measure"] == "score" and record["higher_is_better"] is False
        assert all(math.isfinite(item["score"]) and item["score"] > 0 for item in items)
    elif primary in ("accuracy", "exact_match"):
        assert record["measure"] == "correct"
        assert sum(item["correct"] for item in items) / 6 == pytest.approx(result["metrics"][primary])
    else:
        assert record["measure"] == "score"
        if primary != "chrf":  # chrF is a corpus score; its items carry sentence chrF
            assert sum(item["score"] for item in items) / 6 == pytest.approx(result["metrics"][primary])


def test_causal_loss_is_on_target_tokens_only(tiny_llama_dir, tmp_path):
    from harness.data import load_rows
    from harness.models import load_tokenizer
    from harness.scenarios import SCENARIOS as REGISTRY
    from harness.scenarios.text_to_text import IGNORE

    task = load_matrix([write_scenario_task(tmp_path, "domain-medical", tiny_llama_dir, max_length=256)]).cells[0].task
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    train, evaluation = load_rows(task, ("input", "target"))
    scenario = REGISTRY.get("domain").create(task, tokenizer, "causal", train, evaluation)
    batch = scenario.training_batch(train[:2])
    for row, ids, labels in zip(train[:2], batch.inputs["input_ids"], batch.inputs["labels"]):
        target = [int(t) for t, label in zip(ids, labels) if label != IGNORE]
        assert tokenizer.decode(target[:-1]) == tokenizer.decode(
            tokenizer(row["target"], add_special_tokens=False)["input_ids"]
        )
        assert target[-1] == tokenizer.eos_token_id
        prompt = tokenizer.decode(
            [int(t) for t, label in zip(ids, labels) if label == IGNORE and t != tokenizer.pad_token_id]
        )
        assert "<|assistant|>" in prompt and row["input"].split()[0] in prompt


def test_extractive_windows_cover_long_contexts(tiny_bert_dir, tmp_path):
    from harness.data import load_rows
    from harness.models import load_tokenizer
    from harness.scenarios import SCENARIOS as REGISTRY

    task = load_matrix([write_scenario_task(tmp_path, "qa-extractive", tiny_bert_dir)]).cells[0].task
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    train, evaluation = load_rows(task, ("question", "context", "answers"))
    scenario = REGISTRY.get("question_answering").create(task, tokenizer, "encoder", train, evaluation)
    rows = [r for r in scenario.train_rows if len(r["context"].split()) > 60][:2]
    assert rows, "the shipped squad data has long contexts"
    batch = scenario.training_batch(rows)
    assert batch.inputs["input_ids"].shape[0] > len(rows) == batch.n_samples, (
        "a long context must overflow into windows"
    )
    starts, ends = batch.inputs["start_positions"], batch.inputs["end_positions"]
    found = [(int(s), int(e)) for s, e in zip(starts, ends) if int(s) > 0]
    assert found, "the answer must be labelled in at least one window"
    for (s, e), ids in zip([(int(s), int(e)) for s, e in zip(starts, ends)], batch.inputs["input_ids"]):
        if s > 0:
            span = tokenizer.decode(ids[s : e + 1])
            assert any(
                span.replace(" ", "") in r["answers"]["text"][0].lower().replace(" ", "")
                or r["answers"]["text"][0].lower().replace(" ", "") in span.replace(" ", "")
                for r in rows
            )


def test_prompt_tuning_on_a_causal_lm_scores_perplexity(tiny_llama_dir, tmp_path):
    """Prompt-learning methods prepend virtual tokens; perplexity must still score the target tokens."""
    path = write_scenario_task(tmp_path, "creative", tiny_llama_dir)
    path.write_text(
        path.read_text() + '\n[strategies.peft]\nmethod = "PROMPT_TUNING"\nconfig = { num_virtual_tokens = 4 }\n'
    )
    cell = load_matrix([path], strategies=("peft",)).cells[0]
    result = run_cell(cell, tmp_path / cell.cell_id)
    assert math.isfinite(result["metrics"]["perplexity"]) and result["params"]["trainable"] == 4 * 32


def test_long_prompts_keep_their_end_at_generation(tiny_llama_dir, tmp_path):
    from harness.data import load_rows
    from harness.models import load_tokenizer
    from harness.scenarios import SCENARIOS as REGISTRY

    task = (
        load_matrix([write_scenario_task(tmp_path, "summarization-causal", tiny_llama_dir, max_length=16)])
        .cells[0]
        .task
    )
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    train, evaluation = load_rows(task, ("input", "target"))
    scenario = REGISTRY.get("generation").create(task, tokenizer, "causal", train, evaluation[:1])
    seen = []

    class Recorder:
        def generate(self, input_ids, attention_mask, **settings):
            seen.append(tokenizer.decode(input_ids[0]))
            return input_ids

    scenario.generate(Recorder(), 1, "cpu", lambda batch: __import__("contextlib").nullcontext(batch))
    assert seen[0].rstrip().endswith("<|assistant|>"), seen[0]
    assert tokenizer.padding_side == tokenizer.truncation_side == "right"


@pytest.mark.parametrize(
    "name,bad_row,message",
    [
        ("qa-extractive", {"question": "q", "context": "c", "answers": "c"}, "field answers must be"),
        ("dialogue-multi", {"messages": ["hi", "hello"]}, "field messages must be a list of {role, content} turns"),
    ],
)
def test_malformed_rows_are_named(name, bad_row, message, request, tmp_path):
    import json as json_module

    from harness.models import load_tokenizer
    from harness.scenarios import SCENARIOS as REGISTRY

    model_dir = request.getfixturevalue(SCENARIOS[name][1])
    task = load_matrix([write_scenario_task(tmp_path, name, model_dir)]).cells[0].task
    kind = "encoder" if name == "qa-extractive" else "causal"
    rows = [json_module.loads(json_module.dumps(bad_row))]
    with pytest.raises(ValueError, match=rf"train row 1: {message}"):
        REGISTRY.get(task.task.scenario).create(task, load_tokenizer(str(model_dir)), kind, rows, rows)


def test_balanced_class_weights_weigh_a_rare_class_up(tiny_bert_dir, tmp_path):
    import torch

    from harness.data import load_rows
    from harness.models import load_tokenizer
    from harness.scenarios import SCENARIOS as REGISTRY
    from tests.helpers import write_task

    body = '\n[scenario]\nclass_weights = "balanced"\n'
    task = load_matrix([write_task(tmp_path, "weighted", tiny_bert_dir, body=body)]).cells[0].task
    train, evaluation = load_rows(task, ("text", "label"))
    train = [r for r in train if r["label"] == "positive"][:1] + [r for r in train if r["label"] == "negative"][:3]
    scenario = REGISTRY.get("classification").create(
        task, load_tokenizer(str(tiny_bert_dir)), "encoder", train, evaluation
    )
    assert scenario.labels == ["negative", "positive"]
    assert scenario.class_weights.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])  # rows / (classes x count)
    model, _ = scenario.load_model(str(tiny_bert_dir))
    batch = scenario.training_batch(train)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.inputs.items() if k != "labels"}).logits
        losses = torch.nn.functional.cross_entropy(logits, batch.inputs["labels"], reduction="none")
        weights = torch.tensor([2.0, 2 / 3, 2 / 3, 2 / 3])  # the rare positive row first
        expected = float((weights * losses).sum() / weights.sum())
        assert float(scenario.training_loss(model, batch.inputs)) == pytest.approx(expected, rel=1e-5)
        plain = REGISTRY.get("classification").create(
            load_matrix([write_task(tmp_path, "plain", tiny_bert_dir, body='\n[scenario]\nclass_weights = "none"\n')])
            .cells[0]
            .task,
            scenario.tokenizer,
            "encoder",
            train,
            evaluation,
        )
        assert float(plain.training_loss(model, batch.inputs)) == pytest.approx(float(losses.mean()), rel=1e-5)


def test_an_unknown_class_weighting_is_a_one_line_error(tiny_bert_dir, tmp_path):
    from harness.config import ConfigError
    from tests.helpers import write_task

    path = write_task(tmp_path, "weighted", tiny_bert_dir, body='\n[scenario]\nclass_weights = "inverse"\n')
    with pytest.raises(ConfigError, match=r"scenario\.class_weights.*auto.*none.*balanced"):
        load_matrix([path])
