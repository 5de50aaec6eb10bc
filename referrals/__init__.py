"""referrals: privacy-first case management for youth-at-risk referrals."""

from referrals.app import create_app

__all__ = ["create_app"]
