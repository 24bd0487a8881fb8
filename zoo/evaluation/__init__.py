"""Evaluation: what a model's results are measured against, given the data.

- quality.py: sample quality of generative models (FID/KID with a judge classifier, MMD/KS for
  tables) and `SampleQuality`, the evaluator that zoo.fit and `zoo test` attach to their runs;
- baseline/: classical baselines fitted on exactly the splits zoo trains on (scikit-learn models,
  TF-IDF classifiers, n-gram language models), registered by name and dispatched by the data's
  (modality, task); `zoo baseline` and `zoo.fit --baseline` run them.

Evaluators receive the data; models never touch it. May import models/, data/ and the contracts,
never training/, hub/ or cli/.
"""
