"""Robustness of a trained fusion model to missing and corrupted modalities (issue 18).

- :mod:`src.robustness.perturbations`: the seeded, per-sample perturbations and their registry;
- :mod:`src.robustness.plan`: a ``conf/robustness/`` option validated into the list of
  (modality, perturbation, levels) to sweep;
- :mod:`src.robustness.summary`: relative and effective robustness of metric-vs-level curves;
- :mod:`src.robustness.gates`: mean gates per modality under corruption;
- :mod:`src.robustness.results`: ``robustness.json`` / ``robustness.csv`` and the curve plots.

docs/robustness.md describes them.
"""
