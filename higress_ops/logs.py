"""Structured logs: one JSON object per line, with the `extra` fields a call site passes.

Header values never reach a log line: call sites pass only what they choose, and `SECRET_FIELDS` are
masked should one slip into `extra` anyway.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

SECRET_FIELDS = frozenset({"authorization", "x-istiod-token", "token", "password", "istiodToken", "headers"})
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, replica_id: str = "") -> None:
        super().__init__()
        self.replica_id = replica_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        if self.replica_id:
            line["replica"] = self.replica_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = "<redacted>" if key in SECRET_FIELDS else value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def setup(level: str = "info", replica_id: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(replica_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our own access line has the MCP fields
