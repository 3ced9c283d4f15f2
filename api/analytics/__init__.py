"""Analytics API pieces: errors, query parameters, the events rate limit."""
