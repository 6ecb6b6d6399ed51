"""Reading the classifier's JSON data: a given file, or the one shipped in the package."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any


def read_json(
    path: Path | str | None, shipped: str, what: str, error: type[Exception]
) -> tuple[Any, str]:
    """(the document, where it came from) of `path`, or of `data/<shipped>` when None.
    Raises `error` naming the file when it cannot be read or is not JSON."""
    where = str(path) if path is not None else f"the shipped {what}"
    try:
        if path is None:
            text = resources.files("streams.classify").joinpath("data", shipped).read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return json.loads(text), where
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{where}: cannot read {what}: {exc}") from exc
    except ValueError as exc:
        raise error(f"{where}: {what} is not JSON: {exc}") from exc
