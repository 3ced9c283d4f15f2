"""Monthly reports: one stored report per customer and month."""
