"""Grafana dashboards as code: `python -m deploy.grafana.build [--check]`."""
