"""Notifications: in-app notices, delivery records, preferences and staff sends."""
