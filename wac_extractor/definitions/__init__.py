"""Names shared by the QGIS side: the log tag, where the plugin's resources are, settings keys (``settings``)."""

from __future__ import annotations

from pathlib import Path

LOG_TAG = "WAC Extractor"  # the message log's tab and the message bar's title


def resources_dir() -> Path:
    """``resources/`` inside the installed plugin, or beside the package in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    return package / "resources" if (package / "resources").is_dir() else package.parent / "resources"
