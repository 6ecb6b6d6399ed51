"""Dashboard definitions (grafana-foundation-sdk builders), one module per dashboard."""
