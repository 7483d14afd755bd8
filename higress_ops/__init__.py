"""higress-ops: MCP servers declared in the Higress `higress-config` ConfigMap."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("higress-ops")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
