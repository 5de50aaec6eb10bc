"""Referral domain rules in pure Python: no Flask, no SQLAlchemy, no I/O."""
