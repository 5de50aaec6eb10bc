"""Running the ``referrals`` command in-process, as an operator would type it."""

from __future__ import annotations

from click.testing import CliRunner, Result

from referrals.cli import main


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def run(env: dict[str, str], *args: str) -> str:
    """The command's output; it must succeed."""
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output
