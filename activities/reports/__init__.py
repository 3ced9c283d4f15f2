"""Monthly reports: figures in SQL from the analytics rollup, a narrative, storage, events."""
