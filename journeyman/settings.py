"""Settings, read once from the environment (prefix ``JOURNEYMAN_``).

Every setting has a default that works for the embedded stack (`journeyman dev`);
production overrides them through the environment, never through code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_API_KEY = "dev-key"
DEV_SECRET_KEY = "dev-secret-change-me"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEYMAN_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".journeyman")
    # Empty means "SQLite file inside data_dir"; see `database_url_resolved`.
    database_url: str = ""
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "journeyman"
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [DEV_API_KEY])
    secret_key: str = DEV_SECRET_KEY
    public_url: str = "http://localhost:8000"
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0
    email_from: str = "Journeyman <journeys@localhost>"
    templates_dir: Path = PROJECT_ROOT / "templates"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_dsn(cls, value: str) -> str:
        # Operators paste DSNs from many tools; psycopg 3 is the only Postgres driver we ship.
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.env == "production":
            if self.secret_key == DEV_SECRET_KEY:
                raise ValueError("JOURNEYMAN_SECRET_KEY must be set in production")
            if DEV_API_KEY in self.api_keys:
                raise ValueError("JOURNEYMAN_API_KEYS must not contain the dev key in production")
        if not self.api_keys:
            raise ValueError("JOURNEYMAN_API_KEYS must name at least one key")
        return self

    @property
    def database_url_resolved(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'journeyman.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
