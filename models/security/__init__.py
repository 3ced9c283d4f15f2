"""Staff, security and compliance: freezes, break-glass grants, incidents, session records."""
