"""core.planning."""
