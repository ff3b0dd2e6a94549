"""Configuration hazards: refused in production, warned about elsewhere; quotas clamped."""

from __future__ import annotations

import os

import pytest

from service.settings import MAX_RATE_PER_MINUTE, ConfigError, Settings, check, load

STRONG = "kq3J9x-LmZ2v8RtY7wPb4NcD6hFg1sAe"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test command exports DATABASE_URL and friends; these tests must not see them."""
    for name in list(os.environ):
        if name.startswith(("WATTWISE_", "OPENAI_")) or name in {"DATABASE_URL", "REDIS_URL"}:
            monkeypatch.delenv(name)


def _settings(**values: object) -> Settings:
    return Settings.model_validate({"jwt_secret": STRONG, **values})


@pytest.mark.parametrize("env", ["development", "production"])
def test_a_short_secret_is_refused_in_every_mode_but_the_demo(env: str) -> None:
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        check(_settings(env=env, jwt_secret="short", database_url="postgresql://u:p@h/d"))


def test_no_secret_is_refused_except_in_the_demo_and_where_nothing_signs() -> None:
    with pytest.raises(ConfigError, match="not set"):
        check(Settings.model_validate({"env": "development"}))
    check(Settings.model_validate({"env": "development"}), needs_secret=False)
    check(Settings.model_validate({"env": "demo"}))


def test_wildcard_cors_warns_in_development_and_refuses_in_production() -> None:
    _, warnings = check(_settings(cors_origins="https://a.example, *"))
    assert any("every origin" in w for w in warnings)
    with pytest.raises(ConfigError, match="every origin"):
        check(_settings(env="production", cors_origins="*", database_url="postgresql://u:x@h/d"))


def test_a_weak_secret_is_refused_in_production() -> None:
    weak = "a" * 40
    _, warnings = check(_settings(jwt_secret=weak))
    assert any("weak" in w for w in warnings)
    with pytest.raises(ConfigError, match="weak"):
        check(_settings(env="production", jwt_secret=weak, database_url="postgresql://u:x@h/d"))


def test_production_requires_a_database_and_warns_on_a_default_password() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        check(_settings(env="production"))
    _, warnings = check(_settings(env="production", database_url="postgresql://u:postgres@h/d"))
    assert any("password" in w for w in warnings)
    good = _settings(
        env="production",
        database_url="postgresql://u:Xk9!q2@h/d",
        metrics_token="m" * 24,
        db_sslmode="verify-full",
    )
    _, warnings = check(good)
    assert warnings == []
    _, warnings = check(good.model_copy(update={"db_sslmode": "prefer"}))
    assert len(warnings) == 1
    assert "WATTWISE_DB_SSLMODE=prefer" in warnings[0]
    _, warnings = check(good.model_copy(update={"metrics_token": None}))
    assert len(warnings) == 1
    assert "WATTWISE_METRICS_TOKEN" in warnings[0]


def test_quota_values_above_their_maxima_are_clamped_with_a_warning() -> None:
    settings, warnings = check(_settings(rate_per_minute=10_000, user_daily_tokens=10))
    assert settings.rate_per_minute == MAX_RATE_PER_MINUTE
    assert settings.user_daily_tokens == 10
    assert len(warnings) == 1
    assert "rate_per_minute" in warnings[0]


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_RATE_PER_MINUTE", "7")
    monkeypatch.setenv("WATTWISE_CORS_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    settings = Settings()
    assert settings.rate_per_minute == 7
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.redis_url == "redis://127.0.0.1:6379/3"


def test_operations_settings_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATTWISE_LOG_LEVEL", "debug")
    monkeypatch.setenv("WATTWISE_SHUTDOWN_GRACE_SECONDS", "7.5")
    monkeypatch.setenv("WATTWISE_LIVE_MIN_INTERVAL", "0")
    settings = Settings()
    assert settings.log_level == "DEBUG"
    assert settings.logs_as == "json"
    assert settings.shutdown_grace_seconds == 7.5
    assert settings.live_min_interval == 0
    assert Settings(env="demo").logs_as == "text"
    with pytest.raises(ValueError, match="WATTWISE_LOG_FORMAT"):
        Settings.model_validate({"WATTWISE_LOG_FORMAT": "xml"})


def test_a_bad_setting_is_one_line_naming_the_variable_and_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATTWISE_PORT", "70000")
    monkeypatch.setenv("WATTWISE_RATE_PER_MINUTE", "often")
    with pytest.raises(ConfigError) as raised:
        load()
    message = str(raised.value)
    assert "\n" not in message
    assert "WATTWISE_PORT=70000: Input should be less than or equal to 65535" in message
    assert "WATTWISE_RATE_PER_MINUTE=often" in message


def test_a_bad_secret_or_url_is_named_but_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as raised:
        load(database_url=["postgresql://u:hunter2@h/d"])
    assert "hunter2" not in str(raised.value)
    assert str(raised.value).startswith("bad setting database_url: ")


def test_a_command_line_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_PORT", "8001")
    monkeypatch.setenv("WATTWISE_WORKERS", "3")
    assert load().port == 8001
    flagged = load(port=9000, host="127.0.0.2", workers=2)
    assert (flagged.port, flagged.host, flagged.workers) == (9000, "127.0.0.2", 2)
