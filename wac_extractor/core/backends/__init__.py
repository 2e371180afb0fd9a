"""core.backends."""
