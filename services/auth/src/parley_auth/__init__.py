"""Auth command service: accounts, verification codes, sessions and access tokens."""
