"""Bytes of upstream answers that tool calls hold, bounded per call and for the whole process.

A server type reads its upstream answers through `CallContext.held`: each chunk is taken from the call's
share before it is kept, so an answer over either bound is cut while it streams, not after it was read
whole. A call's bytes are given back when the call ends (the core does that), whatever it did with them.
"""

from __future__ import annotations

from typing import Literal

PER_CALL = 64 * 1024 * 1024  # the largest gateway config dumps seen are tens of MB
PROCESS = 256 * 1024 * 1024  # what all calls in progress may hold together (the Deployment's limit is 768 Mi)
Over = Literal["call", "process"]


class ByteLedger:
    """The process-wide count; one per host."""

    def __init__(self, per_call: int = PER_CALL, total: int = PROCESS) -> None:
        self.per_call = min(per_call, total)
        self.total = total
        self.held = 0

    def open(self) -> CallBytes:
        return CallBytes(self)


class CallBytes:
    """One call's share of the ledger."""

    __slots__ = ("held", "ledger")

    def __init__(self, ledger: ByteLedger) -> None:
        self.ledger = ledger
        self.held = 0

    def take(self, size: int) -> Over | None:
        """Count `size` more bytes for this call; None when they fit, else which bound they would pass."""
        ledger = self.ledger
        if self.held + size > ledger.per_call:
            return "call"
        if ledger.held + size > ledger.total:
            return "process"
        self.held += size
        ledger.held += size
        return None

    def release(self) -> None:
        self.ledger.held -= self.held
        self.held = 0
