"""Datasets: sources read and validated into sample dicts, DataModules that split and batch them."""
