"""IMDb movie reviews (Maas et al., 2011) for ULMFiT: sentiment classification and the
target-task language model, from TFDS ``imdb_reviews/plain_text`` (25,000 labelled training
reviews, 25,000 test reviews, 50,000 unlabelled ones).

* ``imdb_reviews_<suffix>``: review -> ``neg`` / ``pos`` (``tasks.finetuning`` features over
  a sentencepiece vocabulary, no special tokens); ``validation`` is the last 10% of the
  training reviews (fastai's hold-out), ``train`` the first 90%, ``test`` the test set.
* ``lm_imdb_reviews_<suffix>``: each review a document for target-task LM fine-tuning, as
  ULMFiT does: ``train`` = the same 90% of the training reviews plus the unlabelled ones,
  ``validation`` = the held-out 10%; the test reviews are never read.

Both raise ``tasks.pretraining.DatasetNotPreparedError`` with the ``tfds build`` command
when the data is absent (it cannot be downloaded on every machine).
"""

from __future__ import annotations

import functools

import seqio
import tensorflow as tf

from tasks import finetuning as ft
from tasks import language_modeling as lm
from tasks import metrics
from tasks.pretraining import PreparedTfdsDataSource

IMDB_TFDS = "imdb_reviews/plain_text:1.0.0"
LABELS = ("neg", "pos")
CLASSIFIER_SPLITS = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}
LM_SPLITS = {"train": "train[:90%]+unsupervised", "validation": "train[90%:]"}


def _clean(text: tf.Tensor) -> tf.Tensor:
    """The reviews' HTML line breaks as spaces."""
    return tf.strings.regex_replace(text, r"<br\s*/?>", " ")


def register_imdb(vocab: seqio.Vocabulary, suffix: str, tfds_data_dir: str | None = None
                  ) -> list[str]:
    """``imdb_reviews_<suffix>`` and ``lm_imdb_reviews_<suffix>``; returns their names."""
    name = f"imdb_reviews_{suffix}"
    ft.add_task(
        name,
        ft.TaskSpec("classification", LABELS, metrics.accuracy, "accuracy"),
        source=PreparedTfdsDataSource(IMDB_TFDS, tfds_data_dir=tfds_data_dir,
                                      splits=CLASSIFIER_SPLITS),
        preprocessors=[
            lambda ds: ds.map(lambda ex: {"text": _clean(ex["text"]), "label": ex["label"]}),
            functools.partial(ft.encode_document, text="text", label_names=LABELS,
                              stats_name=name),
        ],
        output_features=ft.output_features(vocab, "classification"),
        shuffle_buffer_size=25_000)
    lm_name = f"lm_imdb_reviews_{suffix}"
    lm._add(
        lm_name,
        source=PreparedTfdsDataSource(IMDB_TFDS, tfds_data_dir=tfds_data_dir,
                                      splits=LM_SPLITS),
        preprocessors=[
            lambda ds: ds.map(lambda ex: {"targets": _clean(ex["text"])}),
            seqio.preprocessors.tokenize,
            functools.partial(lm.chunk_documents, stats_name=lm_name, append_eos=True),
        ],
        output_features=lm.output_features(vocab),
        shuffle_buffer_size=lm.DEFAULT_SHUFFLE_BUFFER)
    return [name, lm_name]
