"""The ledger of upstream bytes: a call's share and the replica's, taken before bytes are kept, given back whole."""

from __future__ import annotations

from higress_ops.servers.held import ByteLedger


def test_a_call_and_the_replica_are_bounded_and_released() -> None:
    ledger = ByteLedger(per_call=100, total=150)
    first, second = ledger.open(), ledger.open()
    assert first.take(60) is None and first.take(40) is None
    assert first.take(1) == "call"  # 101 for one call
    assert second.take(60) == "process"  # 160 for the replica; nothing was counted
    assert second.take(50) is None and ledger.held == 150
    first.release()
    assert ledger.held == 50 and first.held == 0
    assert second.take(50) is None and ledger.held == 100  # the released share is free again
    second.release()
    assert ledger.held == 0
    assert ByteLedger(per_call=500, total=200).per_call == 200  # one call never holds more than the replica
