"""Tasks for payments (built by its issue)."""
