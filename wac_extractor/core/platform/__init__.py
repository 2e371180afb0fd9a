"""core.platform."""
