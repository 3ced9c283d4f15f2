"""API pieces of the security domain."""
