"""Deterministic feature extraction shared by data loaders and encoders (e.g. audio spectrograms)."""
