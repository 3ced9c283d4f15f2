"""API pieces of the AI domain."""
