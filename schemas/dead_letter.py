"""A rejected input as it lands on `ceasefire.reports.dlq`: enough to see why and to replay it."""

from __future__ import annotations

import base64

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.codes import RejectReason


class DeadLetterError(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    type: str
    message: str


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: RejectReason
    message: str
    errors: list[DeadLetterError] = []
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    key: str | None = None
    #: The original bytes, base64-encoded: they may not be UTF-8 or JSON at all.
    original_base64: str
    #: The same bytes as text when they decode as UTF-8, for reading at a glance.
    original_text: str | None = None
    received_at: AwareDatetime
    rejected_at: AwareDatetime

    @classmethod
    def encode_original(cls, raw: bytes) -> tuple[str, str | None]:
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return base64.b64encode(raw).decode("ascii"), text

    def original(self) -> bytes:
        return base64.b64decode(self.original_base64)
