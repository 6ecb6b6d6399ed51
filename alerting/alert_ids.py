"""What identifies an alert: its fingerprint (rule and labels, one per alert until it
resolves) and the id of each of its firing episodes."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping

#: Namespace of alert ids: uuid5(fingerprint + the incident that started the episode [+ the
#: episode's number from the second on]).
ALERT_NAMESPACE = uuid.UUID("3d0c9a1e-7f52-5b64-8e21-a4b6c8d0e2f4")


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """Stable identity of an alert: sha256 of the rule name and the sorted labels."""
    canonical = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def alert_id_for(fp: str, trigger_incident_id: str, episode: int = 0) -> str:
    """The id of one firing episode: the fingerprint, the incident that started it and,
    from the second episode of the fingerprint on (`episode` 1, 2, ...), its number."""
    name = f"{fp}\x1f{trigger_incident_id}"
    return str(uuid.uuid5(ALERT_NAMESPACE, name if not episode else f"{name}\x1f{episode}"))
