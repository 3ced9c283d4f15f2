"""Reconciliation of rows whose workflow never started or ended unfinished (links, sign-ups)."""
