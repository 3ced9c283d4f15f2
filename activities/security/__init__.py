"""Security domain service: payment freezes, the risk engine, incidents."""
