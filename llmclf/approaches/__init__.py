"""Approaches: every classifier the study compares, behind one contract (`contract.Classifier`: fit(task) ->
self, predict_proba(texts) -> (n, labels)).

- `embedding_head`: a linear head on a causal LM's pooled hidden state, LoRA, optionally on a quantized base;
- `instruction` (with `prompts`): the causal LM trained to answer with the label(s); generate, constrained, score;
- `encoder`, `frozen`, `tfidf` (chosen by `baselines.make_baseline`): the baselines; `linear` is the linear model
  that `frozen` and `tfidf` share;
- `batching` (texts to tensors, pooling), `training` (Trainer, the fine-tuned classifier base), `decisions`
  (probabilities to labels, thresholds): what they share.

Imports `llmclf.config`, `llmclf.artifacts`, `llmclf.data` and `llmclf.models`; never analysis or study.
"""
