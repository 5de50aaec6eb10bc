"""Pytest plugin: the loopback OpenID Provider as fixtures (see tests/support/idp.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.idp import RestartableIdP, TestIdP, default_clients, default_resources


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIdP]:
    """One provider for the whole session, with the default clients and resources."""
    with TestIdP.start(
        tmp_path_factory.mktemp("idp"), default_clients(), default_resources()
    ) as idp:
        yield idp


@pytest.fixture
def restartable_idp(tmp_path: Path) -> Iterator[RestartableIdP]:
    """A provider of the test's own for restarts on a fixed port (key rotation, outages).

    Call ``.start()`` for the first process and again, e.g. with
    ``generate_keys(rsa_kid="rsa-2")``, to replace it under the same issuer.
    """
    idp = RestartableIdP(tmp_path / "idp", default_clients(), default_resources())
    yield idp
    idp.stop()
