"""Authentication building blocks used by the API: tokens, TOTP, throttling."""
