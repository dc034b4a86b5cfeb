"""Evaluation metrics.

Modules (import them directly; this package imports nothing heavy):
  inception           the FID Inception-v3 (2015-12-05) Keras model, `build_fid_inception(weights)`
  inception_weights   weights: project .npz, Google's .tgz / .pb, download + cache
  inception_graphdef  reading the original TF1 GraphDef's constants and conv geometry
  features            batched feature extraction
  kid, fid, inception_score   the metrics (float64)
  three_sample        Bounliphone et al.'s relative-similarity test
  lr_adaptation       KID-driven learning-rate adaptation state (checkpointable)
  feature_cache       on-disk cache of real features
  registry            METRICS: the metrics by name, one signature (tools/evaluate.py and training)
  training_eval       what the trainer calls every `eval_every` steps
"""
