"""GLUE (TFDS ``glue/*``) and the shipped Austen novel-attribution set as seqio tasks.

Every GLUE task of the BERT paper is registered as ``glue_<name>_<vocab>`` (e.g.
``glue_mrpc_bert_uncased``) with its metric as the benchmark defines it: CoLA Matthews
correlation; STS-B Pearson/Spearman; MRPC and QQP F1 and accuracy; accuracy for the
rest. MNLI has ``glue_mnli_matched`` and ``glue_mnli_mismatched`` (the same training
data; the dev/test split differs) and the diagnostic ``glue_ax`` (test only, scored
on the GLUE server with an MNLI model). Splits are ``train``, ``validation``, ``test``
(GLUE test labels are hidden: ``pretrain_lm.evaluate --split=test`` writes the
submission files instead of scores).

``austen_novels_<vocab>``: sentences of Jane Austen's six novels labelled with the novel
they come from (``data/classification/austen_novels``, public domain, split by chapter).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import seqio
import tensorflow as tf

from tasks import corpus, metrics
from tasks import finetuning as ft
from tasks.pretraining import PreparedTfdsDataSource
from tasks.vocab import WordPieceVocabulary, vocab_fingerprint

GLUE_VERSION = "2.0.0"
MNLI_LABELS = ("entailment", "neutral", "contradiction")

# name: (TFDS config, text_a, text_b, label names (empty: regression), metric, main metric)
GLUE_TASKS = {
    "cola": ("cola", "sentence", None, ("unacceptable", "acceptable"),
             metrics.matthews_corr, "matthews_corr"),
    "sst2": ("sst2", "sentence", None, ("negative", "positive"), metrics.accuracy, "accuracy"),
    "mrpc": ("mrpc", "sentence1", "sentence2", ("not_equivalent", "equivalent"),
             metrics.f1_and_accuracy, "f1"),
    "qqp": ("qqp", "question1", "question2", ("not_duplicate", "duplicate"),
            metrics.f1_and_accuracy, "f1"),
    "stsb": ("stsb", "sentence1", "sentence2", (), metrics.pearson_spearman,
             "pearson_spearman_mean"),
    "mnli_matched": ("mnli", "premise", "hypothesis", MNLI_LABELS, metrics.accuracy,
                     "accuracy"),
    "mnli_mismatched": ("mnli", "premise", "hypothesis", MNLI_LABELS, metrics.accuracy,
                        "accuracy"),
    "qnli": ("qnli", "question", "sentence", ("entailment", "not_entailment"),
             metrics.accuracy, "accuracy"),
    "rte": ("rte", "sentence1", "sentence2", ("entailment", "not_entailment"),
            metrics.accuracy, "accuracy"),
    "wnli": ("wnli", "sentence1", "sentence2", ("not_entailment", "entailment"),
             metrics.accuracy, "accuracy"),
    "ax": ("ax", "premise", "hypothesis", MNLI_LABELS, metrics.accuracy, "accuracy"),
}


def _splits(name: str) -> dict[str, str]:
    if name == "ax":
        return {"test": "test"}
    if name.startswith("mnli_"):
        which = name.split("_")[1]
        return {"train": "train", "validation": f"validation_{which}",
                "test": f"test_{which}"}
    return {"train": "train", "validation": "validation", "test": "test"}


def register_glue(vocab: WordPieceVocabulary, *, suffix: str | None = None,
                  tfds_data_dir: str | None = None) -> list[str]:
    """Registers ``glue_<task>_<suffix>`` for every GLUE task and the mixture
    ``glue_<suffix>`` of the dev-scored ones; returns the names."""
    suffix = suffix or vocab_fingerprint(vocab)
    names = []
    for key, (config, text_a, text_b, labels, metric_fn, main) in GLUE_TASKS.items():
        name = f"glue_{key}_{suffix}"
        head = "classification" if labels else "regression"
        ft.add_task(
            name,
            ft.TaskSpec(head, labels, metric_fn, main, glue_name=key),
            source=PreparedTfdsDataSource(
                f"glue/{config}:{GLUE_VERSION}", tfds_data_dir=tfds_data_dir,
                splits=_splits(key)),
            preprocessors=[
                functools.partial(ft.encode_text_pair, text_a=text_a, text_b=text_b,
                                  stats_name=name),
            ],
            output_features=ft.output_features(vocab, head),
        )
        names.append(name)
    return names


AUSTEN_NOVELS = ("emma", "mansfield_park", "northanger_abbey", "persuasion",
                 "pride_and_prejudice", "sense_and_sensibility")


class MalformedDataError(ValueError):
    """A shipped or user data file does not have the expected format."""


def read_labelled_tsv(path: str, label_names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``sentence<TAB>label`` lines after a header; every malformed line is reported."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Labelled data file {path!r} does not exist.")
    sentences, labels, problems = [], [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != "sentence\tlabel":
            raise MalformedDataError(f"{path}: the first line must be 'sentence<TAB>label', "
                                     f"got {header!r}.")
        for number, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2 or not fields[0].strip():
                problems.append(f"line {number}: expected 'sentence<TAB>label', got {line!r}")
            elif fields[1] not in label_names:
                problems.append(f"line {number}: unknown label {fields[1]!r}")
            else:
                sentences.append(fields[0])
                labels.append(fields[1])
    if problems:
        raise MalformedDataError(
            f"{path}: {len(problems)} malformed line(s) (labels must be one of "
            f"{list(label_names)}):\n  " + "\n  ".join(problems[:10]))
    return sentences, labels


def train_subset(num_sentences: int, size: int) -> np.ndarray:
    """Indices of the ``train_<size>`` split: ``size`` of the ``num_sentences`` training
    sentences drawn without replacement (fixed seed), in file order. A smaller subset is
    part of every larger one (sample-efficiency curves grow one labelled set)."""
    if not 0 < size <= num_sentences:
        raise ValueError(f"train_{size}: the train split has {num_sentences} sentences; "
                         f"choose a subset size in [1, {num_sentences}].")
    return np.sort(np.random.default_rng(0).permutation(num_sentences)[:size])


def register_labelled_tsv_task(name: str, directory: str, vocab: seqio.Vocabulary,
                               label_names: tuple[str, ...],
                               train_subsets: tuple[int, ...] = ()) -> seqio.Task:
    """A single-sentence classification task from ``{train,validation,test}.tsv``:
    ``[CLS] sentence [SEP]`` with a WordPiece vocabulary, the bare ids with another one
    (e.g. sentencepiece, for ULMFiT's classifier).

    ``train_subsets`` adds splits ``train_<n>``: n training sentences (``train_subset``),
    for learning curves over the number of labelled examples."""

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        base, _, size = split.partition("_")
        sentences, labels = read_labelled_tsv(os.path.join(directory, f"{base}.tsv"),
                                              label_names)
        if size:
            keep = train_subset(len(sentences), int(size))
            sentences, labels = [sentences[i] for i in keep], [labels[i] for i in keep]
        ds = tf.data.Dataset.from_tensor_slices(
            {"sentence": sentences, "label": labels,
             "idx": tf.range(len(sentences), dtype=tf.int32)})
        if shuffle_files:
            ds = ds.shuffle(len(sentences), seed=seed, reshuffle_each_iteration=True)
        return ds

    splits = ("train", "validation", "test")
    counts = corpus.tsv_split_sizes(directory, splits)
    for size in train_subsets:
        if size > counts.get("train", size):
            raise ValueError(f"{name}: train_{size} asks for more than the "
                             f"{counts['train']} training sentences.")
        counts[f"train_{size}"] = size
    splits += tuple(f"train_{size}" for size in train_subsets)
    return ft.add_task(
        name,
        ft.TaskSpec("classification", label_names, metrics.accuracy, "accuracy"),
        source=seqio.FunctionDataSource(dataset_fn, splits=splits,
                                        num_input_examples=counts or None),
        preprocessors=[functools.partial(
            ft.encode_text_pair if hasattr(vocab, "cls_id") else ft.encode_document,
            **({"text_a": "sentence"} if hasattr(vocab, "cls_id") else {"text": "sentence"}),
            label_names=label_names, stats_name=name)],
        output_features=ft.output_features(vocab, "classification"),
        shuffle_buffer_size=4_000,
    )
