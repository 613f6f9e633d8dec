"""Diagnostics: what the metrics of a run say about entropy, computed from verl's logged metrics."""
