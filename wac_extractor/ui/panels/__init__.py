"""ui.panels."""
