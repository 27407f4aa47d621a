"""Scoring decoded text: sclite-format WER / CER (sclite or its Python twin) and RESULTS.md tables."""
