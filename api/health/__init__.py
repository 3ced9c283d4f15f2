"""API pieces of the health domain: dependency probes for `/health/dependencies`."""
