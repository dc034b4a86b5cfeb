"""The gradient-flow generator update of Mroueh & Nguyen (2020), `--loss=flow`.

  update.py    FlowGeneratorUpdate: the kernelised (natural-gradient) generator step and its diagnostics
  features.py  the feature maps Phi on critic features (the critic itself, random Fourier features)
  solvers.py   the linear solves of the update: direct (Cholesky) and conjugate gradient
"""
