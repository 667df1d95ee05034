"""Tools around the library: each is a ``python -m pretrain_lm.tools.NAME`` command.

* ``interop``: BERT checkpoints between HuggingFace, Google's TF 1 format and ours;
  ``interop_transformer``: HF ``MarianMTModel`` / ``GPT2LMHeadModel`` weights to ours.
* ``plots``: a run's learning curves; ``attention_plots``: the Transformer's attention
  maps; ``layer_weights``: ELMo's learned layer weights.
* ``ensemble``: classifier runs averaged (ULMFiT forward + backward).
* ``sweep``: a grid over gin macros, best cell on dev, mean ± std over seeds.
* ``reproduce``: the papers' tables, ours beside theirs.
* ``plan``: a run compiled ahead of time for its mesh (memory, FLOPs, step time).
* ``average_checkpoints``: the average of a run's last N checkpoints.

The library they build on (trainer, partitioning, data, checkpoints, optimizers, gin,
and the ``train`` / ``evaluate`` / ``infer`` entry points) is ``pretrain_lm/``; it does not
import the tools, except ``pretrained.py``, which converts HF and TF BERT checkpoints
with ``interop`` when a run starts from one.
"""
