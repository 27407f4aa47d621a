"""Analyses of trained models and their training signals (reports, not training or search)."""
