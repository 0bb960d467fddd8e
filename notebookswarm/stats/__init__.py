"""Per-endpoint statistics and latency histograms: pure, merged exactly (see docs/statistics.md)."""
