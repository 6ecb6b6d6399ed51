"""Alerting: rules over incidents, the alert lifecycle, backtesting, Alertmanager delivery.

- `alerting.rules`: the YAML rule file (`load_rules`, `RuleSet`, `RuleFileError`);
- `alerting.engine`: pure evaluation over one zone's plain-data state (`ZoneState`,
  `evaluate_incident`, `evaluate_batch`, `evaluate_time`, `next_deadline`);
- `alerting.backtest`: offline runs over a file of reports (`backtest`, `render_backtest`);
- `alerting.alertmanager`: `to_alertmanager`, `AlertmanagerClient`.

See docs/alerting.md.
"""
