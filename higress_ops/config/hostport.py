"""`host:port` and `[v6]:port`, parsed with the very pattern the schema validates them with.

The schema (`$defs/hostPort`) is the one source of the accepted forms, so the schema and the parser cannot
drift apart again (the schema once refused `[::1]:6379`, which the parser and the docs accepted).
"""

from __future__ import annotations

import re
from functools import cache

from higress_ops.config.schema import DOCUMENT_SCHEMA, load_schema


class AddressError(ValueError):
    """An address that is not `host:port`; the message starts with the config pointer given."""


@cache
def _pattern() -> re.Pattern[str]:
    return re.compile(load_schema(DOCUMENT_SCHEMA)["$defs"]["hostPort"]["pattern"])


def parse_host_port(address: str, where: str) -> tuple[str, int]:
    """(host, port) with the brackets of a v6 host removed; `where` is the JSON pointer for errors."""
    text = address.strip()
    if not _pattern().fullmatch(text):
        raise AddressError(f"{where}: expected host:port or [v6]:port, got {address!r}")
    host, _, port_text = text.rpartition(":")
    port = int(port_text)
    if not 0 < port < 65536:
        raise AddressError(f"{where}: port {port} is out of range 1-65535")
    return host.removeprefix("[").removesuffix("]"), port
