"""CoNLL-2003 named-entity recognition (TFDS ``conll2003``) as a seqio task.

BERT's recipe (Devlin et al., 2018, section 5.3): each word is WordPiece-tokenized
and its IOB2 tag is predicted at its first sub-token; the other sub-tokens carry no
label. Scored at the entity level with seqeval in conlleval mode (``tasks.metrics``).
"""

from __future__ import annotations

import functools

from tasks import finetuning as ft
from tasks import metrics
from tasks.pretraining import PreparedTfdsDataSource
from tasks.tagging import CONLL_TAGS
from tasks.vocab import WordPieceVocabulary, vocab_fingerprint

CONLL_TFDS = "conll2003:1.0.0"


def register_conll2003(vocab: WordPieceVocabulary, *, suffix: str | None = None,
                       tfds_data_dir: str | None = None) -> str:
    """Registers ``conll2003_ner_<suffix>`` (splits train / validation / test)."""
    name = f"conll2003_ner_{suffix or vocab_fingerprint(vocab)}"
    ft.add_task(
        name,
        ft.TaskSpec("token", CONLL_TAGS, metrics.ner_f1, "f1"),
        source=PreparedTfdsDataSource(CONLL_TFDS, tfds_data_dir=tfds_data_dir),
        preprocessors=[functools.partial(ft.encode_tagged_words, words="tokens", tags="ner",
                                         stats_name=name)],
        output_features=ft.output_features(vocab, "token"),
    )
    return name
