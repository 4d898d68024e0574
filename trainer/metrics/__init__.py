"""Metrics for judging generators (filled in by the metrics work)."""
