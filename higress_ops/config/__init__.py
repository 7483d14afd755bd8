"""Loading and validating the Higress `higress-config` mcpServer block."""

from higress_ops.config.errors import ConfigError, Problem
from higress_ops.config.loader import load_document, load_file, load_text
from higress_ops.config.model import McpServerConfig, ServerEntry

__all__ = ["ConfigError", "McpServerConfig", "Problem", "ServerEntry", "load_document", "load_file", "load_text"]
