"""Input formats: a model names the batches it reads; the task must give that kind."""

from __future__ import annotations

import pytest

import tasks
from models import awd_lstm, bert, elmo, gpt, taglm, transformer
from tasks.formats import InputFormatError


@pytest.mark.parametrize("task,lengths,expected", [
    ("bert_pretrain_austen_uncased", {"max_seq_length": 32}, "bert_pretraining"),
    ("austen_novels_bert_uncased", {"max_seq_length": 32}, "finetuning"),
    ("translate_en_de_debian_l10n", {"inputs_length": 8}, "seq2seq"),
    ("lm_austen_spm8k", {"targets_length": 8}, "decoder"),
    ("lm_austen_spm8k", {"targets_length": 8, "bptt": 4}, "bptt_stream"),
    ("bilm_austen_words", {"targets_length": 8}, "word_level"),
    ("ner_austen", {"targets_length": 8}, "word_level"),
])
def test_the_format_of_a_task_is_inferred_as_before(task, lengths, expected):
    assert tasks.infer_input_format(task, lengths) == expected


def test_every_model_names_a_known_format():
    models = (bert.BertPretrainingModel, bert.BertFineTuningModel, transformer.TranslationModel,
              gpt.LanguageModel, awd_lstm.AWDLSTMLanguageModel, awd_lstm.AWDLSTMClassifier,
              elmo.ELMoLanguageModel, taglm.TaggerModel)
    known = tasks.input_formats()
    assert {m.input_format for m in models} == set(known)


def _get(task: str, input_format: str | None, **lengths):
    return tasks.get_dataset(task, split="train", batch_size=2, seed=0, shuffle=False,
                             input_format=input_format, **lengths)


def test_a_task_of_another_kind_is_refused_naming_both():
    with pytest.raises(InputFormatError, match=r"'lm_austen_spm8k' does not give BERT "
                                               r"pretraining pairs.*'bert_pretraining'"):
        _get("lm_austen_spm8k", "bert_pretraining", max_seq_length=8,
             max_predictions_per_seq=2)
    with pytest.raises(InputFormatError, match="'word_level' input format"):
        _get("austen_novels_bert_uncased", "word_level", targets_length=8)


def test_missing_or_unused_lengths_unknown_formats_and_backward_reading_are_refused():
    with pytest.raises(InputFormatError, match=r"needs the lengths \['bptt'\].*'bptt': \.\.\."):
        _get("lm_austen_spm8k", "bptt_stream", targets_length=8)
    with pytest.raises(InputFormatError, match=r"takes the lengths \['targets_length'\], not "
                                               r"\['bptt'\]"):  # not silently ignored
        _get("lm_austen_spm8k", "decoder", targets_length=8, bptt=4)
    with pytest.raises(InputFormatError, match=r"Unknown input format 'packed'.*'seq2seq'"):
        _get("lm_austen_spm8k", "packed", targets_length=8)
    with pytest.raises(InputFormatError, match=r"DataConfig\.reverse = False"):
        tasks.get_dataset("lm_austen_spm8k", split="train", batch_size=2, seed=0,
                          shuffle=False, reverse=True, targets_length=8)


def test_named_format_gives_the_same_batches_as_the_inferred_one():
    named = next(_get("austen_novels_bert_uncased", "finetuning", max_seq_length=16)
                 .as_numpy_iterator())
    inferred = next(_get("austen_novels_bert_uncased", None, max_seq_length=16)
                    .as_numpy_iterator())
    assert named.keys() == inferred.keys()
    for key in named:
        assert (named[key] == inferred[key]).all(), key


def test_packing_on_real_pairs_keeps_every_token_and_is_refused_where_unsupported():
    """The shipped en-de pairs, one a row and packed: the same target tokens in the same
    order, in fewer rows, with segment ids and positions that restart for each example.
    A format of one example a row refuses ``pack=True``, naming the fix."""
    import numpy as np

    def first_rows(pack: bool, n: int) -> dict[str, np.ndarray]:
        ds = tasks.get_dataset("translate_en_de_debian_l10n", split="validation",
                               batch_size=n, seed=0, shuffle=False, num_epochs=1,
                               pack=pack, inputs_length=48, targets_length=48)
        return next(iter(ds.as_numpy_iterator()))

    single = first_rows(False, 24)
    packed = first_rows(True, 8)
    assert {"encoder_segment_ids", "decoder_positions"} <= set(packed)
    rows = packed["decoder_target_tokens"]
    tokens_packed = rows[rows > 0]
    tokens_single = single["decoder_target_tokens"][single["decoder_target_tokens"] > 0]
    n = len(tokens_packed)
    assert n > 2 * rows.size // 3  # over two thirds of the positions hold a token
    np.testing.assert_array_equal(tokens_packed, tokens_single[:n])
    starts = packed["decoder_positions"] == 0
    assert (packed["decoder_segment_ids"][starts & (rows > 0)] >= 1).all()
    with pytest.raises(InputFormatError, match=r"pack=True.*set DataConfig.pack = False"):
        tasks.get_dataset("ner_austen", split="train", batch_size=2, seed=0,
                          shuffle=False, pack=True, targets_length=32)
