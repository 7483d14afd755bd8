"""Where plugin.yaml and schemas/ live: the repo root in a source checkout, `_data/` in a wheel."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_path(name: str) -> Path:
    """Path of a top-level data file (`plugin.yaml`, `schemas/...`) whichever way we were installed."""
    for base in (_PACKAGE.parent, _PACKAGE / "_data"):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} not found next to the package or in its _data/ folder")
