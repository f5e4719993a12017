"""Cross-service tests. The fixtures come from the ``ptce.testing.plugin`` pytest plugin."""
