"""A strict YAML reader for configs: duplicate keys are errors and alias expansion is bounded.

PyYAML keeps the last of two equal keys silently (a typo'd copy-paste wins unseen), and a few nested
aliases can make a tiny file expand into billions of nodes when validated.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

MAX_BYTES = 4 * 1024 * 1024
MAX_ALIASES = 100
MAX_VALUES = 100_000  # after alias expansion; a real higress-config has a few hundred


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name); expand them by hand", event.start_mark
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable key: the base class reports it
                if duplicate:
                    raise ConstructorError(
                        "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


def parse(text: str) -> Any:
    """One YAML document; raises yaml.YAMLError (with marks where PyYAML has them)."""
    if len(text) > MAX_BYTES:
        raise yaml.YAMLError(f"document is {len(text)} characters; the limit is {MAX_BYTES}")
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    _check_size(data)
    return data


def _check_size(data: Any) -> None:
    """Count values as the validator will see them (aliases expanded), stopping at the limit; refuse NaN."""
    count, stack = 0, [data]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise yaml.YAMLError(f"document expands to more than {MAX_VALUES} values (nested aliases?)")
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float) and value != value:
            raise yaml.YAMLError(".nan is not a usable value here (it compares false with every limit)")
