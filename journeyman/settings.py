"""Settings, read once from the environment (prefix ``JOURNEYMAN_``).

Every setting has a default that works for the embedded stack (`journeyman dev`);
production overrides them through the environment, never through code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from journeyman.crm.mapping import FieldMapping
from journeyman.worker_defaults import default_activity_slots, default_workflow_task_slots

DEV_API_KEY = "dev-key"
DEV_SECRET_KEY = "dev-secret-change-me"
DEV_FEEDBACK_SECRET = "dev-feedback-secret"
DEV_CRM_WEBHOOK_SECRET = "dev-crm-secret"
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
    # Temporal Cloud or a TLS-secured cluster. An API key implies TLS; a client certificate and
    # key (PEM files) are mTLS; a CA file verifies a self-hosted server's certificate.
    temporal_api_key: str = ""
    temporal_tls: bool = False
    temporal_tls_cert_path: Path | None = None
    temporal_tls_key_path: Path | None = None
    temporal_tls_ca_path: Path | None = None
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [DEV_API_KEY])
    # Keys for backends: only events, contact and consent writes, enrolling and exiting
    # (`api.deps.INGEST_ENDPOINTS`); every other route answers them 403. None by default.
    ingest_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Request bodies larger than this are refused (413) unread; bulk enrollment uploads have
    # their own, larger limit (8 MiB).
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
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

    # Respecting the contact (issue 3). Quiet hours are local to the contact ("" turns them off).
    default_timezone: str = "UTC"
    quiet_hours: str = "21:00-08:00"
    quiet_hours_policy: Literal["defer", "skip"] = "defer"
    # Rolling-window caps on marketing sends per channel: "channel:count/window", window in
    # m, h or d. Transactional sends are exempt.
    frequency_caps: str = "email:2/24h,email:5/7d,sms:1/24h,sms:3/7d,push:3/24h"
    # How long a signed unsubscribe link stays valid; CAN-SPAM wants an opt-out honoured for
    # at least 30 days after the message was sent.
    unsubscribe_link_max_age_days: int = Field(default=365, ge=30)
    # How long an email's open pixel and click links keep recording (and redirecting).
    tracking_link_max_age_days: int = 365

    # SMS through a Twilio-style API: POST {sms_api_url}/Accounts/{sid}/Messages.json.
    sms_api_url: str = "http://localhost:8025/sms/2010-04-01"
    sms_account_sid: str = "AC-dev"
    sms_auth_token: str = "dev-token"
    sms_from: str = "+15005550006"
    # Push through a generic JSON API: POST {push_api_url} with a bearer token.
    push_api_url: str = "http://localhost:8025/push"
    push_api_token: str = "dev-push-token"
    # Webhook steps POST signed JSON here unless the step names its own URL.
    webhook_url: str = "http://localhost:8025/webhook"
    webhook_secret: str = "dev-webhook-secret"
    provider_timeout_seconds: float = 15.0

    # Sends on their own task queue (empty: the journeys' queue), so that a provider quota can
    # cap them alone: the worker then also polls it for sends only, at most
    # `send_max_per_second` across all workers (0: no cap). Set before enrollments start:
    # each keeps the queue it started with.
    send_task_queue: str = ""
    send_max_per_second: float = Field(default=0.0, ge=0)

    # Worker tuning: sends in flight, journey steps processed at once, enrollments kept in
    # memory between their steps, and a server-enforced cap on the task queue's activities
    # per second across all workers (0: none; every worker of the queue must set the same
    # value). The two slot counts default to 5 and 10 per CPU, capped at the SDK's 100: the
    # SDK's 100 each spiral into timeouts on a small machine (journeyman/worker_defaults.py).
    worker_max_concurrent_activities: int = Field(default_factory=default_activity_slots, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(
        default_factory=default_workflow_task_slots, ge=2
    )
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    worker_max_task_queue_activities_per_second: float = Field(default=0.0, ge=0)
    # The poller watchdog (journeyman/worker_watchdog.py): every this many seconds the worker
    # asks the server whether it still polls, and exits once the server has answered for the
    # grace period without listing it, so its supervisor restarts it (0: no watchdog).
    worker_watchdog_seconds: float = Field(default=30.0, ge=0)
    worker_watchdog_grace_seconds: float = Field(default=120.0, gt=0)

    # The worker's metrics for Prometheus (Temporal SDK metrics and send latency), served by
    # the Temporal runtime on this ip:port; empty serves none. The API's are at /metrics.
    worker_metrics_address: str = ""
    # OpenTelemetry traces (issue 7), off by default: an event's trace runs from the HTTP
    # request through the enrollment's workflow to its activities (`journeyman/tracing.py`).
    tracing: bool = False
    # The OTLP/HTTP collector's base URL (spans go to <it>/v1/traces), e.g.
    # http://otel-collector:4318; empty leaves it to the exporter's own OTEL_EXPORTER_OTLP_*
    # environment and default (http://localhost:4318).
    otel_exporter_otlp_endpoint: str = ""
    # Spans carry the service name `<this>-api` or `<this>-worker`.
    otel_service_name: str = "journeyman"

    # Provider feedback (POST /v1/webhooks/email). The Journeyman format authenticates with
    # `Authorization: Bearer <feedback_secret>`; the dev placeholder is refused in production.
    feedback_secret: str = DEV_FEEDBACK_SECRET
    # Mailgun's "HTTP webhook signing key"; empty refuses Mailgun-format requests.
    mailgun_signing_key: str = ""
    # How far a Mailgun signature's timestamp may be from now. Mailgun warns its own delays
    # can be long, so this is minutes, not seconds.
    mailgun_max_age_seconds: int = 900

    # Lead scoring (issue 5). The rules are code (`journeyman/scoring/rules.py`); these tune
    # the model: points halve every `score_half_life_days`; crossing `score_qualify_at`
    # upward emits `lead.qualified`, falling under `score_disqualify_below` emits
    # `lead.disqualified` (the gap between them keeps a score hovering at one line quiet).
    score_half_life_days: float = Field(default=30.0, gt=0)
    score_qualify_at: float = 50.0
    score_disqualify_below: float = 30.0

    # CRM sync (issue 5): "none", "hubspot" or "webhook" (a generic signed JSON endpoint).
    crm: Literal["none", "hubspot", "webhook"] = "none"
    hubspot_api_url: str = "https://api.hubapi.com"
    # A HubSpot private app's access token (sent as a bearer token).
    hubspot_token: str = ""
    # The HubSpot app's client secret: verifies X-HubSpot-Signature-v3 on inbound webhooks.
    hubspot_client_secret: str = ""
    # The generic connector POSTs signed JSON here; inbound CRM webhooks in the generic format
    # are verified with the same secret.
    crm_webhook_url: str = ""
    crm_webhook_secret: str = DEV_CRM_WEBHOOK_SECRET
    # Field mapping override, "local>remote:direction,..." (direction push, pull or both);
    # empty uses the mapping in `journeyman/crm/mapping.py`.
    crm_fields: str = ""
    # Changes to one contact within this window go to the CRM as one call.
    crm_sync_window_seconds: float = Field(default=10.0, ge=0)
    # Contacts per outbound batch call (HubSpot's batch endpoints take at most 100).
    crm_batch_size: int = Field(default=100, ge=1, le=100)
    # Where internal "a lead qualified" emails go (besides the CRM task for the owner).
    sales_email: str = "sales@localhost"

    # Segments and bulk enrollment (issue 6): the default rate of a bulk enrollment's starts,
    # so a backfill never starves the journeys already running; and whether the worker
    # creates the journeys' Temporal Schedules at start-up.
    bulk_starts_per_second: float = Field(default=50.0, gt=0, le=10_000)
    schedules_enabled: bool = True

    @field_validator("api_keys", "ingest_api_keys", mode="before")
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

    @field_validator("worker_metrics_address")
    @classmethod
    def _ip_and_port(cls, value: str) -> str:
        # The Temporal runtime binds a socket address: an IP literal, never a host name.
        value = value.strip()
        host, _, port = value.rpartition(":")
        try:
            if value:
                ip_address(host.removeprefix("[").removesuffix("]"))
                if not (port.isdigit() and 0 < int(port) < 65536):
                    raise ValueError(port)
        except ValueError as err:
            raise ValueError(f"bad address {value!r}: want ip:port, e.g. 127.0.0.1:9464") from err
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown IANA timezone {value!r}") from err
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_shape(cls, value: str) -> str:
        if value.strip():
            parse_quiet_hours(value)
        return value.strip()

    @field_validator("frequency_caps")
    @classmethod
    def _caps_shape(cls, value: str) -> str:
        parse_caps(value)
        return value

    @field_validator("crm_fields")
    @classmethod
    def _crm_mapping_shape(cls, value: str) -> str:
        # Refused at start-up, not on the first contact update that reads the mapping.
        FieldMapping.parse(value)
        return value

    @property
    def caps(self) -> list[FrequencyCap]:
        return parse_caps(self.frequency_caps)

    @property
    def quiet_window(self) -> tuple[time, time] | None:
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.env == "production":
            if self.secret_key == DEV_SECRET_KEY:
                raise ValueError("JOURNEYMAN_SECRET_KEY must be set in production")
            if DEV_API_KEY in self.api_keys:
                raise ValueError("JOURNEYMAN_API_KEYS must not contain the dev key in production")
            if DEV_API_KEY in self.ingest_api_keys:
                raise ValueError(
                    "JOURNEYMAN_INGEST_API_KEYS must not contain the dev key in production"
                )
            if self.crm == "webhook" and self.crm_webhook_secret in ("", DEV_CRM_WEBHOOK_SECRET):
                raise ValueError("JOURNEYMAN_CRM_WEBHOOK_SECRET must be set in production")
        if (self.temporal_tls_cert_path is None) != (self.temporal_tls_key_path is None):
            raise ValueError(
                "JOURNEYMAN_TEMPORAL_TLS_CERT_PATH and JOURNEYMAN_TEMPORAL_TLS_KEY_PATH go together"
            )
        if self.score_disqualify_below > self.score_qualify_at:
            raise ValueError(
                "JOURNEYMAN_SCORE_DISQUALIFY_BELOW must not exceed JOURNEYMAN_SCORE_QUALIFY_AT"
            )
        if not self.api_keys:
            raise ValueError("JOURNEYMAN_API_KEYS must name at least one key")
        if set(self.api_keys) & set(self.ingest_api_keys):
            # Which scope would it have? Refused rather than guessed.
            raise ValueError("a key is in both JOURNEYMAN_API_KEYS and JOURNEYMAN_INGEST_API_KEYS")
        return self

    @property
    def database_url_resolved(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'journeyman.db').resolve()}"


@dataclass(frozen=True)
class FrequencyCap:
    channel: str
    limit: int
    window: timedelta


_WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_caps(text: str) -> list[FrequencyCap]:
    """Parse "email:2/24h,email:5/7d" into caps; raises ValueError naming the bad part."""
    caps: list[FrequencyCap] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            channel, rule = part.split(":")
            count, window = rule.split("/")
            seconds = int(window[:-1]) * _WINDOW_UNITS[window[-1]]
            cap = FrequencyCap(channel.strip(), int(count), timedelta(seconds=seconds))
        except (ValueError, KeyError, IndexError) as err:
            raise ValueError(f"bad frequency cap {part!r}: want channel:count/window") from err
        if cap.limit < 1 or seconds <= 0:
            raise ValueError(f"bad frequency cap {part!r}: count and window must be positive")
        caps.append(cap)
    return caps


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """Parse "21:00-08:00" into (start, end) local times."""
    try:
        start, end = (time.fromisoformat(t.strip()) for t in text.split("-"))
    except ValueError as err:
        raise ValueError(f"bad quiet hours {text!r}: want HH:MM-HH:MM") from err
    return start, end


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
