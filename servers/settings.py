"""Settings of the protocol servers: app.config first, then the RENKEI_* environment, then a default."""
from __future__ import annotations

import os
from typing import Any


def setting(app, key: str, default: Any) -> Any:
    """app.config[key], else the RENKEI_<key> environment variable, else the default."""
    value = app.config.get(key)
    if value is None or value == "":
        value = os.environ.get(f"RENKEI_{key}")
    if value is None or value == "":
        return default
    return value


def flag(value: Any) -> bool:
    """Read "1", "true", "yes", "on" (any case) as True."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")
