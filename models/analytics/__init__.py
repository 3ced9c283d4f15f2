"""Analytics: the daily rollup of the ledger's transactions and the client event log."""
