"""Scoring: `metrics` (WER / CER with jiwer), `evaluate` (a model on a manifest, perturbed or
not; paired comparisons), `tune` (decoder weights on dev) and `report/` (report.json, HTML)."""
