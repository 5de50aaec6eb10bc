"""``python -m referrals.cli``: the same command as the ``referrals`` script."""

from referrals.cli import main

main()
