"""Tasks for calls (built by its issue)."""
