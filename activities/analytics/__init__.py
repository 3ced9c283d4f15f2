"""Analytics read side: figures from the `analytics_daily` rollup, the streamed export, and
the client event log."""
