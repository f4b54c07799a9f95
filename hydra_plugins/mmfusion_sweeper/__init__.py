"""The repo's Hydra sweeper (``hydra/sweeper=resumable``, the default of conf/hydra/default.yaml).

Hydra only instantiates plugins that live in the ``hydra_plugins`` namespace package, hence this
thin module; what it does is in :mod:`src.utils.sweep`.
"""
