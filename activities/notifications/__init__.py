"""Notifications: which events deserve a notice, templates, preferences, delivery."""
