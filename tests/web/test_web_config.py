"""The web front end's settings, and what production demands of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from referrals import create_app
from referrals.config import ConfigError, Settings
from tests.ops.test_config import production

SECRET = "s" * 48


def test_web_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "REFERRALS_ENV": "development",
            "REFERRALS_WEB_CLIENT_ID": "referrals-web",
            "REFERRALS_WEB_CLIENT_SECRET": "test-secret",
            "REFERRALS_WEB_SCOPE": "openid referrals:read",
            "REFERRALS_WEB_RESOURCE": "urn:referrals-api",
            "REFERRALS_WEB_SECRET_KEY": SECRET,
            "REFERRALS_WEB_SESSION_IDLE": "600",
            "REFERRALS_WEB_SESSION_LIFETIME": "3600",
        }
    )
    assert settings.web_client_id == "referrals-web"
    assert settings.web_resource == "urn:referrals-api"
    assert (settings.web_session_idle, settings.web_session_lifetime) == (600, 3600)
    assert "test-secret" not in repr(settings)
    assert SECRET not in repr(settings)


def test_session_times_must_be_whole_seconds() -> None:
    with pytest.raises(ConfigError, match="REFERRALS_WEB_SESSION_IDLE"):
        Settings.from_env({"REFERRALS_ENV": "development", "REFERRALS_WEB_SESSION_IDLE": "15m"})


def test_production_pages_need_a_secret_key(tmp_path: Path) -> None:
    settings = production(tmp_path).with_overrides(web_client_id="referrals-web")
    with pytest.raises(ConfigError, match="REFERRALS_WEB_SECRET_KEY"):
        create_app(settings)
    with pytest.raises(ConfigError, match="at least 32"):
        create_app(settings.with_overrides(web_secret_key="short"))


def test_production_serves_pages_only_with_a_web_client(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    without = create_app(production(tmp_path / "a")).test_client()
    assert without.get("/app/sign-in").status_code == 404
    settings = production(tmp_path / "b").with_overrides(
        web_client_id="referrals-web", web_secret_key=SECRET
    )
    with_client = create_app(settings).test_client()
    page = with_client.get("/app/sign-in")
    assert page.status_code == 200
    assert "/app/sign-in/start" in page.get_data(as_text=True)
    assert with_client.get("/app/dev/sign-in").status_code == 404
    # No secret was generated into the instance folder: production brought its own.
    assert not (tmp_path / "b" / "web-secret-key").exists()


def test_development_generates_a_private_secret_key_once(tmp_path: Path) -> None:
    create_app(Settings(instance_path=tmp_path))
    key = tmp_path / "web-secret-key"
    assert key.stat().st_mode & 0o777 == 0o600
    first = key.read_text()
    create_app(Settings(instance_path=tmp_path))
    assert key.read_text() == first
