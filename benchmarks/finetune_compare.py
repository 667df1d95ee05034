r"""Ours beside the reference: the shipped pretrained MiniLM fine-tuned on real benchmarks
by this project (``pretrain_lm.train`` + ``pretrain_lm.evaluate``) and by HuggingFace
``transformers`` (``benchmarks.finetune_reference``), same rows, recipe and seeds.

    python -m benchmarks.finetune_compare --task=stsb --poolings=pooler,mean --seeds=0,1,2 \
      [--max_seq_length=128 --learning_rate=5e-5 --epochs=3] [--implementations=ours,hf]

Every run's result is one JSON file under ``--results_dir`` (default
``results/benchmark/finetune``: ``<task>/<impl>_<pooling>_seed<k>.json``); a run whose file
exists is not run again, so an interrupted sweep continues where it stopped. At the end
(and with ``--report_only``) the directory's runs are summarised: ``<task>.md`` (mean ±
sample std over seeds, both implementations and the published BERT-Base figure, marked
as a larger model) and ``<task>.png``.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from benchmarks.reference_encoding import EVAL_SPLITS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# task: (gin file of the bench_* task, metric keys shown, main metric)
TASKS = {
    "stsb": ("finetune/bench_glue_stsb.gin", ("pearson", "spearman"), "pearson"),
    "rte": ("finetune/bench_glue_rte.gin", ("accuracy",), "accuracy"),
    "mrpc": ("finetune/bench_glue_mrpc.gin", ("f1", "accuracy"), "f1"),
    "cola": ("finetune/bench_glue_cola.gin", ("matthews_corr",), "matthews_corr"),
    "sst2": ("finetune/bench_glue_sst2.gin", ("accuracy",), "accuracy"),
    "conll2003": ("finetune/bench_conll2003_ner.gin", ("f1", "precision", "recall"), "f1"),
    "squad": ("finetune/bench_squad_v1_dev.gin", ("exact_match", "f1"), "f1"),
}
# BERT-Base dev-set figures are not in the paper (its Table 1 is GLUE *test*); these are the
# test-server figures of BERT-Base (Devlin et al. 2019, Table 1), for scale only.
PUBLISHED_BERT_BASE_TEST = {"stsb": ("spearman", 85.8), "rte": ("accuracy", 66.4),
                            "mrpc": ("f1", 88.9), "cola": ("matthews_corr", 52.1),
                            "sst2": ("accuracy", 93.5)}
# CoNLL-2003 is scored by the paper itself (Table 7, fine-tuned BERT-Base): dev and test F1.
PUBLISHED_BERT_BASE_NER = {"validation": 96.4, "test": 92.4}
# SQuAD v1.1 (Table 2, BERT-Base single): the whole official dev set, EM / F1. Ours hold out
# 10 of its 48 articles and train on the other 38 (no train file ships), so scale only.
PUBLISHED_BERT_BASE_SQUAD = (80.8, 88.5)

_TASK = flags.DEFINE_enum("task", "stsb", list(TASKS), "Benchmark task.")
_POOLINGS = flags.DEFINE_list("poolings", ["mean"], "Sentence-head poolings to run.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_IMPLS = flags.DEFINE_list("implementations", ["ours", "hf"], "ours and/or hf.")
_LR = flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
_EPOCHS = flags.DEFINE_float("epochs", 3, "Epochs.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size.")
_MAX_LEN = flags.DEFINE_integer("max_seq_length", 128, "Maximum wordpieces.")
_RESULTS = flags.DEFINE_string("results_dir", os.path.join(REPO_ROOT, "results", "benchmark",
                                                           "finetune"), "Where results go.")
_WORK = flags.DEFINE_string("work_dir", "/tmp/finetune_compare", "Model dirs of our runs.")
_EXTRA_GIN = flags.DEFINE_multi_string(
    "extra_gin", [], "More gin bindings for our runs (e.g. trainer.train.num_microbatches=2 "
    "to halve the activation memory of long sequences); recorded in the run's commands.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only summarise existing results.")
_HF_DEVICE = flags.DEFINE_string("hf_device", "cpu", "torch device of the reference runs.")
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoint of the reference runs "
                                 "(default: the shipped MiniLM).")


def ours_commands(task: str, pooling: str, seed: int, model_dir: str) -> list[list[str]]:
    """``pretrain_lm.train`` then ``pretrain_lm.evaluate`` (validation) of one run."""
    flags_ = ["--gin_file=models/bert/minilm_l6_h384.gin", "--gin_file=runs/finetune.gin",
              f"--gin_file={TASKS[task][0]}",
              f"--gin.PRETRAINED={_package_model_dir()}",
              f"--gin.MODEL_DIR={model_dir}", f"--gin.POOLING='{pooling}'",
              f"--gin.LEARNING_RATE={_LR.value}", f"--gin.EPOCHS={_EPOCHS.value}",
              f"--gin.BATCH_SIZE={_BATCH.value}", f"--gin.MAX_SEQ_LENGTH={_MAX_LEN.value}",
              f"--gin.DATA_SEED={seed}", f"--gin.trainer.train.seed={seed}",
              "--gin.trainer.train.checkpoint_every=100000", "--gin.trainer.train.eval_every=0",
              "--gin.trainer.train.keep_checkpoints=1", "--gin.trainer.train.progress_bar=False",
              *(f"--gin.{binding}" for binding in _EXTRA_GIN.value)]
    return [[sys.executable, "-m", "pretrain_lm.train", *flags_],
            *([sys.executable, "-m", "pretrain_lm.evaluate", *flags_, f"--split={split}"]
              for split in EVAL_SPLITS.get(task, ("validation",)))]


def _package_model_dir() -> str:
    from pretrain_lm import pretrained

    return pretrained.package_model_dir()


def hf_command(task: str, pooling: str, seed: int, output: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.finetune_reference", f"--task={task}",
            f"--pooling={pooling}", f"--seed={seed}", f"--learning_rate={_LR.value}",
            f"--epochs={_EPOCHS.value}", f"--batch_size={_BATCH.value}",
            f"--max_seq_length={_MAX_LEN.value}", f"--output={output}",
            f"--device={_HF_DEVICE.value}",
            *([f"--model_dir={_MODEL_DIR.value}"] if _MODEL_DIR.value else [])]


def run_ours(task: str, pooling: str, seed: int, output: str) -> None:
    model_dir = os.path.join(_WORK.value, f"{task}_{pooling}_seed{seed}")
    commands = ours_commands(task, pooling, seed, model_dir)
    start = time.perf_counter()
    log = open(output + ".log", "w")  # noqa: SIM115 -- kept open for both commands
    for command in commands:
        subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=log, stderr=log)
    log.close()
    evaluated = {}
    for split in EVAL_SPLITS.get(task, ("validation",)):
        with open(os.path.join(model_dir, f"eval_{split}", "results.json")) as f:
            evaluated[split] = json.load(f)[-1]
    with open(os.path.join(model_dir, "train", "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f][-1]
    result = {"implementation": "ours", "task": task, "pooling": pooling, "seed": seed,
              "learning_rate": _LR.value, "epochs": _EPOCHS.value,
              "batch_size": _BATCH.value, "max_seq_length": _MAX_LEN.value,
              "steps": evaluated["validation"]["step"],
              "seconds": time.perf_counter() - start,
              "train_tokens_per_sec_last": last.get("tokens_per_sec"),
              "truncated": {split: e["metrics"].get("examples_truncated")
                            for split, e in evaluated.items()},
              **{split: e["metrics"] for split, e in evaluated.items()},
              "commands": ["python " + " ".join(c[1:]) for c in commands]}
    with open(output, "w") as f:
        json.dump(result, f, indent=1)


def run_hf(task: str, pooling: str, seed: int, output: str) -> None:
    partial = output + ".partial"  # complete files only: parallel sweeps summarise too
    command = hf_command(task, pooling, seed, partial)
    start = time.perf_counter()
    with open(output + ".log", "w") as log:
        subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=log, stderr=log)
    with open(partial) as f:
        result = json.load(f)
    command[command.index(f"--output={partial}")] = f"--output={output}"
    result.update(seconds=time.perf_counter() - start, commands=["python " + " ".join(command[1:])])
    with open(partial, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(partial, output)


def summarise(task: str, results_dir: str) -> str:
    """``<task>.md`` and ``<task>.png`` from every run file of ``task``; returns the table."""
    runs = []
    for path in sorted(glob.glob(os.path.join(results_dir, task, "*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    keys, main = TASKS[task][1], TASKS[task][2]
    splits = EVAL_SPLITS.get(task, ("validation",))
    columns = [(split, key) for split in splits for key in keys]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["pooling"], r["implementation"]), []).append(r)
    split_names = {"validation": "dev", "test": "test"}
    lines = [f"# {task}: all-MiniLM-L6-v2 fine-tuned, "
             + " and ".join(f"{split_names[s]} ({s})" for s in splits), "",
             "| pooling | implementation | seeds | "
             + " | ".join(f"{split_names[s]} {k}" for s, k in columns) + " | minutes/run |",
             "|---|---|---|" + "---|" * len(columns) + "---|"]
    for (pooling, impl), group in sorted(groups.items()):
        cells = []
        for split, key in columns:
            values = np.array([g[split][key] for g in group], float)
            spread = f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""
            cells.append(f"{values.mean():.1f}{spread}")
        minutes = np.mean([g["seconds"] for g in group]) / 60
        devices = sorted({g.get("device", "cpu") for g in group})
        lines.append(f"| {pooling} | {impl} | {len(group)} | " + " | ".join(cells)
                     + f" | {minutes:.1f} ({', '.join(devices)}) |")
    if task == "conll2003":
        published = ("BERT-Base (110M parameters, a larger model; Devlin et al. 2019 Table 7, "
                     "fine-tuned): dev F1 {validation}, test F1 {test}."
                     ).format(**PUBLISHED_BERT_BASE_NER)
    elif task == "squad":
        published = ("BERT-Base (110M parameters, a larger model, trained on the 87,599 "
                     "questions of SQuAD train; Devlin et al. 2019 Table 2): the full "
                     "official dev set, EM {} / F1 {}. Ours: 10 held-out dev articles, "
                     "trained on the other 38, so not comparable.".format(
                         *PUBLISHED_BERT_BASE_SQUAD))
    else:
        key, value = PUBLISHED_BERT_BASE_TEST[task]
        published = (f"BERT-Base (110M parameters, a larger model; GLUE test server, Devlin "
                     f"et al. 2019 Table 1): {key} {value}.")
    lines += ["", published, "",
              "Settings: " + (", ".join(f"{k} {runs[0][k]}" for k in (
                  "learning_rate", "epochs", "batch_size", "max_seq_length")) if runs else ""),
              "", "Commands (one per run):", ""]
    lines += [f"    {c}" for r in runs for c in r.get("commands", [])]
    table = "\n".join(lines) + "\n"
    with open(os.path.join(results_dir, f"{task}.md"), "w") as f:
        f.write(table)
    _plot(task, groups, main, os.path.join(results_dir, f"{task}.png"))
    return table


def _plot(task: str, groups: dict, main: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    poolings = sorted({p for p, _ in groups})
    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(poolings), 3.2))
    width = 0.38
    for offset, impl, color in ((-width / 2, "ours", "C0"), (width / 2, "huggingface", "C1")):
        means, stds, xs = [], [], []
        for i, pooling in enumerate(poolings):
            group = groups.get((pooling, impl))
            if group:
                values = np.array([g["validation"][main] for g in group], float)
                means.append(values.mean())
                stds.append(values.std(ddof=1) if len(values) > 1 else 0.0)
                xs.append(i + offset)
        ax.bar(xs, means, width, yerr=stds, capsize=3, color=color, label=impl)
    ax.set_xticks(range(len(poolings)), poolings)
    ax.set_ylabel(f"dev {main}")
    ax.set_title(f"{task}: MiniLM fine-tuned, mean ± std over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str]) -> None:
    del argv
    task = _TASK.value
    os.makedirs(os.path.join(_RESULTS.value, task), exist_ok=True)
    if not _REPORT_ONLY.value:
        for seed in (int(s) for s in _SEEDS.value):
            for pooling in _POOLINGS.value:
                for impl in _IMPLS.value:
                    output = os.path.join(_RESULTS.value, task,
                                          f"{impl}_{pooling}_seed{seed}.json")
                    if os.path.exists(output):
                        continue
                    print(f"{task} {impl} pooling={pooling} seed={seed} ...", flush=True)
                    (run_ours if impl == "ours" else run_hf)(task, pooling, seed, output)
                    print(summarise(task, _RESULTS.value), flush=True)
    print(summarise(task, _RESULTS.value))


if __name__ == "__main__":
    app.run(main)
