"""One `higress-ops serve` process per module, serving two `echo` servers, for the transport tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.serve import ServeProcess, echo_config, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    config = echo_config(("echo-a", "/a"), ("echo-b", "/b"))
    with serving(config, tmp_path_factory.mktemp("serve"), "--keepalive", "0.3") as process:
        yield process
