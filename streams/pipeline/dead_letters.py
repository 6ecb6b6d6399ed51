"""Building dead-letter records for rejected inputs."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.dead_letter import DeadLetter, DeadLetterError
from schemas.validation import Rejection


def dead_letter(
    raw: bytes,
    rejection: Rejection,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    received_at: datetime,
) -> bytes:
    b64, text = DeadLetter.encode_original(raw)
    record = DeadLetter(
        reason=rejection.reason,
        message=rejection.message,
        errors=[DeadLetterError(**e.as_dict()) for e in rejection.errors],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key=key.decode("utf-8", "replace") if key is not None else None,
        original_base64=b64,
        original_text=text,
        received_at=received_at,
        rejected_at=datetime.now(UTC),
    )
    return record.model_dump_json().encode()
