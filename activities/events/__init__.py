"""Domain events: the outbox relay to Redis streams, and the stream entry format."""
