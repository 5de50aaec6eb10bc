"""Field encryption in pure Python: no Flask, no SQLAlchemy; keys are always injected."""
