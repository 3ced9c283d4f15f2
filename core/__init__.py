"""Shared kernel: settings, database, redis, logging, errors, crypto. No domain logic here."""
