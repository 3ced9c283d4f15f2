"""Payment use cases shared by the payment routes."""
