r"""Continue a prompt with a trained GPT checkpoint, or measure its held-out perplexity:
the language-model mode of ``python -m pretrain_lm.infer`` under its older name.

    python -m pretrain_lm.generate --gin_file=gpt/demo_tiny_austen.gin \
      --gin.MODEL_DIR=runs/demo_gpt_tiny --prompt="It is a truth" \
      [--num_samples=3 --max_new_tokens=60 --temperature=0.8 --top_k=40 --top_p=0.95]
      [--method=sample|greedy|beam] [--beam_size=4 --alpha=0.6] [--seed=0]
    python -m pretrain_lm.generate (same gin flags) --mode=score [--split=validation]

See ``pretrain_lm/infer.py``.
"""

from absl import app

from pretrain_lm import gin_utils
from pretrain_lm.infer import main

if __name__ == "__main__":
    app.run(main, argv=gin_utils.main_argv())
