r"""Translate with a trained Transformer checkpoint and score it with sacrebleu: the
translation mode of ``python -m pretrain_lm.infer`` under the name older commands use.

    python -m pretrain_lm.decode --gin_file=transformer/demo_tiny_en_de.gin \
      --gin.MODEL_DIR=runs/demo_mt [--split=test | --input_file=src.txt] \
      [--method=beam|greedy|sample] [--beam_size=4 --alpha=0.6] [--checkpoint=STEP]

Beam 4, GNMT length penalty alpha 0.6 and at most ``input length + 50`` tokens by
default, as the Transformer paper; writes ``MODEL_DIR/decode_<split>/hypotheses.txt``
and ``bleu.json`` (see ``pretrain_lm/infer.py``).
"""

from absl import app

from pretrain_lm import gin_utils
from pretrain_lm.infer import main

if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
