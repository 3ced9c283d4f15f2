"""Staff identities: the roles a user holds besides being a customer."""
