"""The named seqio tasks and mixtures that gin files refer to.

Importing this module registers them (`tasks.get_dataset` and `tasks.get_vocabulary`
import it on first use, so gin files only name a task):

* `bert_pretrain_austen_uncased`: the shipped `data/corpus/austen.txt` (public domain)
  with `data/vocab/austen_uncased` (7,433 wordpieces learned from that corpus);
* `bert_pretrain_austen_wwm_uncased`: the same with whole-word masking;
* `bert_pretrain_wikipedia_uncased`: TFDS `wikipedia/20230601.en`, and
  `bert_pretrain_lm1b_uncased`: TFDS `lm1b`, both with `data/vocab/bert_uncased`
  (BERT's own 30,522-token uncased vocabulary);
* `bert_pretrain_wiki_lm1b_uncased`: a mixture, Wikipedia 90% / lm1b 10%.

Fine-tuning (BERT's uncased vocabulary): `glue_<task>_bert_uncased` for every GLUE task
(`tasks/glue.py`), `squad_v1_bert_uncased` / `squad_v2_bert_uncased` (`tasks/squad.py`),
`conll2003_ner_bert_uncased` (`tasks/conll.py`), and the shipped
`austen_novels_bert_uncased` (sentence -> which of Austen's six novels), and
`austen_novels_gcide8k` (the same over the GCIDE BPE vocabulary, for ULMFiT's classifier,
with `train_100` / `train_300` / `train_1000` subsets of its training split),
`austen_novels_austen_uncased` (over the Austen WordPiece vocabulary of the BERT demo);
`imdb_reviews_gcide8k` / `lm_imdb_reviews_gcide8k` (TFDS IMDb, `tasks/imdb.py`).

Translation: `translate_en_de_debian_l10n` (shipped, `data/parallel/en-de`), TFDS
`wmt14_translate_en_de`, `wmt14_translate_en_fr`, `wmt_t2t_translate_en_de`
(`tasks/translation.py`). Language modelling: `lm_austen_spm8k` / `lm1b_lm_spm8k`
(decoder-only, `tasks/language_modeling.py`, `data/vocab/spm_austen_8k`);
for ULMFiT `lm_gcide8k` and `lm_austen_novels_gcide8k` (`data/vocab/spm_gcide_8k`);
for ELMo `bilm_austen_words` (word-level biLM, one sentence per example, `tasks/bilm.py`,
`data/vocab/austen_words`: 7,944 words of the train split seen >= 3 times).

Word-level NER for the TagLM / ELMo taggers (`tasks/tagging.py`): the shipped
`ner_austen` (`data/ner/austen`), `ner_austen_unk_classes`, `ner_austen_vectors`
(`data/vectors`), and TFDS `conll2003_ner_words` / `conll2003_ner_words_unk_classes`.

Real benchmark files (`tasks/benchmark_tasks.py`, names `bench_*`, read from
`$PRETRAIN_LM_DATA_DIR` and the `benchmarks` extra's packages, counts checked against the
official ones): `bench_glue_{sst2,cola,mrpc,rte,wnli,stsb}_bert_uncased`,
`bench_sst5_bert_uncased`, `bench_trec6_bert_uncased`, `bench_trec50_bert_uncased`,
`bench_conll2003_ner_bert_uncased`, `bench_wnut16_ner_bert_uncased`,
`bench_squad_v1_dev_bert_uncased`; word-level `bench_conll2003_ner_words[_unk_classes|
_vectors]`, `bench_wnut16_ner_words`; `bench_multi30k_translate_en_de` (over
`spm_en_de_4k`); `bench_ptb_lm_words`; ULMFiT on TREC-6 over the GCIDE BPE:
`lm_general_gcide8k` (GCIDE + Austen + PTB), `lm_bench_trec6_gcide8k` (the questions),
`bench_trec6_gcide8k` (the classifier's task, with `train_100` / `train_500`). ELMo /
TagLM's biLM for CoNLL-2003: `bilm_general_words` (GCIDE + Austen + PTB + the CoNLL-2003
training sentences, a softmax over 20,000 words).

TFDS tasks read from `$TFDS_DATA_DIR` (default `~/tensorflow_datasets`) and stop with a
`DatasetNotPreparedError` naming the `tfds build` command when the data is absent.
Register tasks of your own with `tasks.pretraining.register_text_corpus_task` or
`register_bert_tasks` (any BERT-format text file, any vocab.txt).
"""

from __future__ import annotations

import os

import seqio

from tasks import (
    benchmark_tasks,
    bilm,
    conll,
    glue,
    imdb,
    language_modeling,
    pretraining,
    squad,
    tagging,
    translation,
)
from tasks.word_vocab import WordVocabulary

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
AUSTEN_CORPUS = os.path.join(DATA_DIR, "corpus", "austen.txt")
AUSTEN_VOCAB = os.path.join(DATA_DIR, "vocab", "austen_uncased", "vocab.txt")
AUSTEN_NOVELS_DIR = os.path.join(DATA_DIR, "classification", "austen_novels")
PARALLEL_DIR = os.path.join(DATA_DIR, "parallel")
SPM_EN_DE = os.path.join(DATA_DIR, "vocab", "spm_en_de_4k", "spm.model")
WMT_SPM = {"de": os.path.join(DATA_DIR, "vocab", "spm_wmt14_en_de_32k", "spm.model"),
           "fr": os.path.join(DATA_DIR, "vocab", "spm_wmt14_en_fr_32k", "spm.model")}
BERT_UNCASED_VOCAB = os.path.join(DATA_DIR, "vocab", "bert_uncased", "vocab.txt")
AUSTEN_WORDS_VOCAB = os.path.join(DATA_DIR, "vocab", "austen_words", "vocab.txt")
WORD_VECTORS = os.path.join(DATA_DIR, "vectors", "ppmi_svd_50d.txt.gz")
# ``train_<n>`` splits of the novel task: ULMFiT's sample-efficiency curve.
AUSTEN_NOVELS_TRAIN_SUBSETS = (100, 300, 1000)


def register_all(tfds_data_dir: str | None = None) -> list[str]:
    """(Re-)registers every task and mixture above; returns their names."""
    austen_vocab = pretraining.load_vocabulary(AUSTEN_VOCAB, lower_case=True)
    # ~12k pairs per epoch: a 2k-pair buffer on top of shuffled chapters mixes well and
    # starts in seconds (a full buffer takes ~15 s to fill on 2 CPU cores).
    austen = [
        pretraining.register_text_corpus_task(
            "bert_pretrain_austen_uncased", AUSTEN_CORPUS, austen_vocab,
            shuffle_buffer_size=2_000,
        ),
        pretraining.register_text_corpus_task(
            "bert_pretrain_austen_wwm_uncased", AUSTEN_CORPUS, austen_vocab,
            whole_word_mask=True, shuffle_buffer_size=2_000,
        ),
    ]
    bert_vocab = pretraining.load_vocabulary(BERT_UNCASED_VOCAB, lower_case=True)
    wiki = pretraining.register_wikipedia_task(
        "bert_pretrain_wikipedia_uncased", bert_vocab, tfds_data_dir=tfds_data_dir
    )
    lm1b = pretraining.register_lm1b_task(
        "bert_pretrain_lm1b_uncased", bert_vocab, tfds_data_dir=tfds_data_dir
    )
    mixture = "bert_pretrain_wiki_lm1b_uncased"
    if mixture in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(mixture)
    seqio.MixtureRegistry.add(mixture, [(wiki.name, 0.9), (lm1b.name, 0.1)])
    finetuning = [
        *glue.register_glue(bert_vocab, suffix="bert_uncased", tfds_data_dir=tfds_data_dir),
        *(squad.register_squad(bert_vocab, v, suffix="bert_uncased",
                               tfds_data_dir=tfds_data_dir) for v in ("v1", "v2")),
        conll.register_conll2003(bert_vocab, suffix="bert_uncased",
                                 tfds_data_dir=tfds_data_dir),
        glue.register_labelled_tsv_task(
            "austen_novels_bert_uncased", AUSTEN_NOVELS_DIR, bert_vocab, glue.AUSTEN_NOVELS),
        glue.register_labelled_tsv_task(
            "austen_novels_gcide8k", AUSTEN_NOVELS_DIR,
            seqio.SentencePieceVocabulary(os.path.join(DATA_DIR, language_modeling.GCIDE_SPM)),
            glue.AUSTEN_NOVELS, train_subsets=AUSTEN_NOVELS_TRAIN_SUBSETS),
        glue.register_labelled_tsv_task(  # for BERT models pre-trained on austen.txt
            "austen_novels_austen_uncased", AUSTEN_NOVELS_DIR, austen_vocab,
            glue.AUSTEN_NOVELS),
    ]
    en_de = seqio.SentencePieceVocabulary(SPM_EN_DE)
    translation_tasks = [
        translation.register_tsv_translation_task(
            "translate_en_de_debian_l10n", os.path.join(PARALLEL_DIR, "en-de"), en_de,
            "en", "de"),
        translation.register_word_source_translation_task(  # CoVe's word-level source
            "translate_en_de_debian_l10n_cove", os.path.join(PARALLEL_DIR, "en-de"),
            WORD_VECTORS, en_de, "en", "de"),
        *(translation.register_wmt_task(
            f"wmt14_translate_en_{lang}", f"wmt14_translate/{lang}-en:1.0.0",
            seqio.SentencePieceVocabulary(WMT_SPM[lang]), "en", lang, tfds_data_dir)
          for lang in ("de", "fr")),
        translation.register_wmt_task(
            "wmt_t2t_translate_en_de", "wmt_t2t_translate/de-en:1.0.0",
            seqio.SentencePieceVocabulary(WMT_SPM["de"]), "en", "de", tfds_data_dir),
    ]
    finetuning += translation_tasks
    names = [n if isinstance(n, str) else n.name for n in finetuning]
    lm_names = language_modeling.register_all_lm_tasks(DATA_DIR, tfds_data_dir)
    lm_names += imdb.register_imdb(
        seqio.SentencePieceVocabulary(os.path.join(DATA_DIR, language_modeling.GCIDE_SPM)),
        "gcide8k", tfds_data_dir)
    # ELMo's word-level biLM task (tasks/bilm.py): one sentence per example.
    bilm_task = bilm.register_corpus_bilm_task(
        "bilm_austen_words", AUSTEN_CORPUS, WordVocabulary.load(AUSTEN_WORDS_VOCAB))
    # Word-level NER for the TagLM / ELMo taggers (tasks/tagging.py).
    tagging_names = tagging.register_austen_ner(DATA_DIR, WORD_VECTORS)
    tagging_names += tagging.register_conll2003_words(tfds_data_dir)
    # The shipped "which novel" sentences as words, for the BCN (models/bcn.py).
    tagging_names.append(tagging.register_tagging_task(tagging.WordClassificationData(
        "austen_novels_words_vectors", _austen_novels_words, glue.AUSTEN_NOVELS,
        vectors_path=WORD_VECTORS, min_count=tagging.AUSTEN_MIN_COUNT)).name)
    # The real benchmark files ($PRETRAIN_LM_DATA_DIR, benchmark packages; bench_*).
    bench_names = benchmark_tasks.register_all(bert_vocab, "bert_uncased", en_de)
    general_text = [os.path.join(DATA_DIR, "corpus", "gcide", "gcide.txt"), AUSTEN_CORPUS]
    bench_names += benchmark_tasks.register_ulmfit_trec6(
        seqio.SentencePieceVocabulary(os.path.join(DATA_DIR, language_modeling.GCIDE_SPM)),
        "gcide8k", general_text)
    bench_names.append(benchmark_tasks.register_general_bilm(general_text))
    return [t.name for t in austen] + [wiki.name, lm1b.name, mixture, *names, *lm_names,
                                        bilm_task.name, *tagging_names, *bench_names]


def _austen_novels_words(split: str) -> list[tuple[list[str], int]]:
    sentences, labels = glue.read_labelled_tsv(
        os.path.join(AUSTEN_NOVELS_DIR, f"{split}.tsv"), glue.AUSTEN_NOVELS)
    return [(bilm.tokenize(s), glue.AUSTEN_NOVELS.index(label))
            for s, label in zip(sentences, labels, strict=True)]


NAMES = register_all()
