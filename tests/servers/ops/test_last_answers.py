"""The last answer per tool and target is reused only for the very same upstream bytes, arguments and budget, and
what the reuse holds stays bounded."""

from __future__ import annotations

import json

from higress_ops.servers.ops.handler import LastAnswers
from higress_ops.servers.ops.upstream import Fetched


def stats(counter: int) -> Fetched:
    return Fetched(200, "application/json", json.dumps({"stats": [{"name": "a", "value": counter}]}).encode())


def text(result: object) -> str:
    return "".join(part["text"] for part in result.content)  # type: ignore[attr-defined]


def test_same_bytes_same_answer_other_bytes_a_new_one() -> None:
    memo = LastAnswers()
    args = {"pod": "envoyAdminURL"}
    first = memo.shaped("get-envoy-stats", stats(1), args, 65536)
    assert memo.shaped("get-envoy-stats", stats(1), dict(args), 65536) is first  # equal bytes, not the same object
    changed = memo.shaped("get-envoy-stats", stats(2), args, 65536)
    assert '"value": 2' in text(changed) and '"value": 1' in text(first)
    assert memo.shaped("get-envoy-stats", stats(2), args, 65536) is changed


def test_other_arguments_budget_or_target_are_shaped_again() -> None:
    memo = LastAnswers()
    args = {"pod": "gw-a", "format": "json"}
    first = memo.shaped("get-envoy-stats", stats(1), args, 65536)
    assert memo.shaped("get-envoy-stats", stats(1), {**args, "filter": "x"}, 65536) is not first
    assert memo.shaped("get-envoy-stats", stats(1), {**args, "pod": "gw-b"}, 65536) is not first
    small = memo.shaped("get-envoy-stats", stats(1), args, 100)
    assert small is not first and len(text(small)) < len(text(first)) + 200
    assert text(memo.shaped("get-envoy-stats", stats(1), args, 65536)) == text(first)


def test_what_it_holds_is_bounded() -> None:
    memo = LastAnswers()
    memo.MAX_BYTES = 10_000
    for pod in range(100):
        memo.shaped("get-envoy-stats", stats(pod), {"pod": f"gw-{pod}"}, 65536)
        assert memo.held_bytes <= 10_000
    assert memo.held_bytes > 0
    huge = Fetched(200, "application/json", json.dumps({"x": "y" * 20_000}).encode())
    memo.shaped("get-envoy-stats", huge, {"pod": "gw-huge"}, 65536)  # larger than the whole bound: not kept
    assert memo.held_bytes <= 10_000

