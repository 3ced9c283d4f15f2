"""Notification API pieces: the staff send."""
