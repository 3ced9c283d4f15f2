"""Health reports: the detailed dependency view of `/health/dependencies`."""
