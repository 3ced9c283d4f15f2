"""The strangler-fig gateway's routing table (shared by the gateway and the migration)."""
