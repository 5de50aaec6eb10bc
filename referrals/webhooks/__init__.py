"""Outgoing webhooks, as Standard Webhooks (https://www.standardwebhooks.com/) defines them."""
