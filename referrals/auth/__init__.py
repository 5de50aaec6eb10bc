"""Authentication (who is calling: OIDC bearer tokens) and authorization (policy.py)."""
