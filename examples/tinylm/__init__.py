"""tinylm: a tiny transformer language-model package with three families.

- ``arlm``: autoregressive (causal) LM, trained with the fused causal-LM loss, optionally on
  packed sequences;
- ``mlm``: masked LM (BERT-style), a fixed masking rate;
- ``mdlm``: masked diffusion LM, masking rate from a noise schedule, loss weighted by it.

Each family has a model, a loss, a collator and a predictor: the four things its tests check.
"""
