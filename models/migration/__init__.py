"""The strangler-fig migration from the legacy monolith: identity map, quarantine, runs."""
