"""Alerting: rules over incidents, the alert lifecycle, backtesting, Alertmanager delivery.

- `alerting.rules`: the YAML rule file (`load_rules`, `RuleSet`, `RuleFileError`);
- `alerting.zone_state`: one zone's plain-data state (`ZoneState`) and its parts;
- `alerting.engine`: pure evaluation over it (`evaluate_incident`, `evaluate_batch`,
  `evaluate_time`, `next_deadline`);
- `alerting.theatre`: the theatre-wide fatality-peak rules (`TheatreState`, `evaluate`);
- `alerting.peaks`, `alerting.summaries`, `alerting.alert_ids`, `alerting.times`: the parts
  those are built from (fatality-peak alerts, summary wording, alert ids, millisecond times);
- `alerting.backtest`: offline runs over a file of reports (`backtest`, `render_backtest`);
- `alerting.alertmanager`: `to_alertmanager`, `AlertmanagerClient`.

See docs/alerting.md.
"""
