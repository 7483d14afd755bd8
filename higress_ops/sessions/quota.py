"""How many sessions this replica has opened, in total and per principal, so one client cannot fill the
store (or Redis) with sessions. Counted locally: a session used on another replica may leave this count
early (it looks idle here), which errs on the side of letting a client in.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class SessionQuota:
    def __init__(self, *, max_total: int, max_per_principal: int, ttl_seconds: float) -> None:
        self.max_total = max_total
        self.max_per_principal = max_per_principal
        self.ttl_seconds = ttl_seconds
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()  # session -> (principal, last use)
        self._per_principal: dict[str, int] = {}

    def admit(self, principal: str) -> str | None:
        """None when a new session for `principal` fits; else "replica" or "principal", the limit it hit."""
        self._expire(time.monotonic())
        if self.max_total and len(self._seen) >= self.max_total:
            return "replica"
        if self.max_per_principal and self._per_principal.get(principal, 0) >= self.max_per_principal:
            return "principal"
        return None

    def opened(self, session_id: str, principal: str) -> None:
        self._seen[session_id] = (principal, time.monotonic())
        self._per_principal[principal] = self._per_principal.get(principal, 0) + 1

    def touched(self, session_id: str) -> None:
        entry = self._seen.get(session_id)
        if entry is not None:
            self._seen[session_id] = (entry[0], time.monotonic())
            self._seen.move_to_end(session_id)

    def closed(self, session_id: str) -> None:
        entry = self._seen.pop(session_id, None)
        if entry is not None:
            self._release(entry[0])

    def _release(self, principal: str) -> None:
        left = self._per_principal.get(principal, 0) - 1
        if left > 0:
            self._per_principal[principal] = left
        else:
            self._per_principal.pop(principal, None)

    def _expire(self, now: float) -> None:
        while self._seen:  # oldest use first: stop at the first one still alive
            session_id, (principal, last) = next(iter(self._seen.items()))
            if now - last <= self.ttl_seconds:
                return
            del self._seen[session_id]
            self._release(principal)

    def __len__(self) -> int:
        return len(self._seen)
