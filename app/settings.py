"""Deployment settings, read from ``SANLING_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

import pyproj
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from design_rules.profiles import AreaType, ProfileError, get_profile, profile_ids
from design_rules.siting_policy import FactorOverrides
from gis.errors import SanlingError

_SUPPORTED_SCHEMES = ("sqlite", "postgresql")
#: The project folder (the checkout holding app/, migrations/, fixtures/): a relative SANLING_DATA_DIR (the default
#: ``var`` too), a relative SQLite path and the ``.env`` file are taken from it, never from the working directory,
#: so ``sanling`` finds the same data from any folder (issue 17 item 3).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# HS256 keys shorter than the hash output (32 bytes) weaken the signature (RFC 7518 §3.2).
_MIN_JWT_SECRET_CHARS = 32
JWT_SECRET_FILE = "jwt_secret"


class Settings(BaseSettings):
    """Everything a deployment may change. See README "Settings" for the table of variables."""

    model_config = SettingsConfigDict(env_prefix="SANLING_", env_file=PROJECT_ROOT / ".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"), validate_default=True,
        description="Folder for the embedded database, uploaded documents and job files; a relative one is in the "
        "project folder (default: PROJECT/var), whatever the working directory.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty: SQLite + SpatiaLite at DATA_DIR/sanling.sqlite. "
        "PostgreSQL + PostGIS: postgresql://user:pass@host:port/db. A relative SQLite path is in the project folder.",
    )
    projected_crs: str = Field(
        default="EPSG:4545",
        description="Metric CRS for distances and routing: the CGCS2000 3-degree Gauss-Krüger zone "
        "(EPSG:4513-4533 with zone number, 4534-4554 with central meridian) covering the service area.",
    )
    service_area_wgs84: tuple[float, float, float, float] = Field(
        default=(105.28, 28.16, 110.20, 32.21),
        description="Bounding box min_lon, min_lat, max_lon, max_lat of the service area (default: Chongqing).",
    )
    profile: str = Field(default="chongqing-2019", description="Default policy profile id.")
    power_factor: float | None = Field(
        default=None, gt=0.5, le=1.0, description="Overrides the profile's power factor (cos φ)."
    )
    demand_factor: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Overrides the profile's demand factor (同时率)."
    )
    default_area_type: AreaType = Field(
        default=AreaType.URBAN,
        description="Area type (supply radius class) for pins in no grid area when the request names none.",
    )
    upload_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024,
        description="Largest accepted upload (application document or site photo), bytes.",
    )
    json_body_max_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="Largest JSON request body, bytes; also the allowance for the form fields of an upload "
        "(checked before the body is read, app/platform/body_limits.py).",
    )
    deadline_at_risk_working_days: int = Field(
        default=1, ge=0, le=10,
        description="A step is at risk when at most this many working days are left before its deadline (R5.4).",
    )
    deadline_watch_interval_s: float = Field(
        default=900.0, ge=1, description="Interval of the deadline_watch job, seconds.",
    )
    depot_stock_file: Path | None = Field(
        default=None,
        description="CSV `material_code,on_hand_quantity` of the depot (R5.5); confirmed BOMs are checked against "
        "it. Empty: no stock check.",
    )
    request_concurrency: int | None = Field(
        default=None, ge=1, le=256,
        description="Requests per worker process whose work (endpoint and answer) runs at the same time; the "
        "others wait on the event loop, holding no thread. Empty: no limit; `sanling serve` sets 1.",
    )
    host: str = Field(default="127.0.0.1", description="Address `sanling serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `sanling serve` binds to.")
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes for `sanling serve`.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_json: bool = Field(default=True, description="Emit one JSON object per log line.")
    idempotency_ttl_hours: float = Field(
        default=24.0, gt=0, le=24 * 30,
        description="How long an Idempotency-Key and its stored answer are kept; a replay after that runs again.",
    )
    idempotency_wait_s: float = Field(
        default=10.0, ge=0.001, le=120,
        description="PostgreSQL: how long a request waits for another one holding the same Idempotency-Key "
        "before answering 409 IDEMPOTENCY_IN_PROGRESS.",
    )
    notify_sender: str = Field(
        default="logging",
        description="How notifications are delivered: `logging` (a JSON log line), `sms_http` (POST to "
        "SANLING_SMS_GATEWAY_URL) or `package.module:Class` (a NotificationSender built with the settings).",
    )
    sms_gateway_url: str = Field(
        default="", description="SMS gateway endpoint for `notify_sender=sms_http` (http:// or https://)."
    )
    sms_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Timeout of one SMS gateway request.")
    sms_template: str = Field(
        default='{"phone": "{phone}", "text": "{subject}: {body}"}',
        description="Body POSTed to the SMS gateway; `{phone}`, `{subject}`, `{body}`, `{kind}`, `{entity}`, "
        "`{entity_id}`, `{notification_id}` are replaced (JSON-escaped when the template is JSON).",
    )
    jobs_enabled: bool = Field(
        default=False,
        description="Run periodic jobs (notification delivery, key cleanup, deadline watch) in each worker; "
        "a database lease lets one worker run each job per interval. `sanling serve` sets it to true unless given.",
    )
    preload_network: bool = Field(
        default=False,
        description="Read the network and build the siting snapshot when a worker starts, before it accepts "
        "connections, so that no caller waits for the load (seconds at 100k transformers), also after a worker "
        "restart. `sanling serve` sets it to true unless given.",
    )
    jobs_tick_s: float = Field(default=15.0, ge=0.05, le=3600, description="How often the job runner wakes up.")
    notify_interval_s: float = Field(default=60.0, ge=1, description="Interval of the deliver_notifications job.")
    env: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses the development fallbacks (generated JWT secret, fast password hashing).",
    )
    jwt_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HS256 key signing access tokens (at least 32 characters). Empty outside production: a random "
        "secret is generated once and kept in DATA_DIR/jwt_secret (mode 0600), shared by all workers.",
    )
    access_token_minutes: int = Field(
        default=60, ge=1, le=24 * 60, description="Lifetime of an access token issued by POST /api/v1/auth/token."
    )
    password_hash_profile: Literal["default", "fast"] = Field(
        default="default",
        description="argon2id cost: `default` = argon2-cffi's defaults (RFC 9106 low-memory); `fast` = cheap "
        "parameters for test suites only, refused in production.",
    )
    password_hash_concurrency: int = Field(
        default=2, ge=1, le=64,
        description="Password and API-key hashes computed at once per worker process; more sign-ins wait their turn "
        "off the event loop and off the request threads.",
    )
    login_max_failures: int = Field(
        default=5, ge=1, le=1000,
        description="Sign-in attempts of one account that may fail in a row before it is locked for a while "
        "(429 RATE_LIMITED with Retry-After); shared by all workers through the database.",
    )
    login_max_failures_per_address: int = Field(
        default=30, ge=1, le=100_000,
        description="Failed sign-in attempts from one client address, any accounts, before it is locked for a while.",
    )
    login_lockout_s: int = Field(
        default=60, ge=1, le=86_400,
        description="First lock after too many failures, seconds; doubles with each further failure, at most an hour.",
    )
    login_failure_window_s: int = Field(
        default=900, ge=1, le=86_400 * 7,
        description="Failures older than this (and no lock in force) are forgotten, seconds.",
    )
    basemap_tile_url: str = Field(
        default="",
        description="XYZ raster tile URL template of the planner map's base map, e.g. "
        "https://tiles.example/{z}/{x}/{y}.png. Empty: no base map (the map works offline).",
    )
    basemap_attribution: str = Field(default="", description="Attribution shown for the base map.")
    public_rate_per_minute: float = Field(
        default=30.0, gt=0, description="Sustained requests per minute per client IP on /api/v1/public (per worker)."
    )
    public_rate_burst: int = Field(
        default=10, ge=1, description="Requests a client IP may send at once on /api/v1/public (per worker)."
    )
    public_hex_size_m: float = Field(
        default=500.0, ge=100.0, le=5000.0,
        description="Circumradius of the hexagonal cells of the public capacity disclosure, metres.",
    )
    service_phone: str = Field(
        default="95598", min_length=3, max_length=32, pattern=r"^[0-9][0-9 -]*[0-9]$",
        description="The company's service phone shown on the public disclosure page /public beside the 12398 "
        "energy-regulator hotline (BS 四(五)1); default 95598, State Grid's service line.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IP addresses or CIDR networks of the reverse proxies whose X-Forwarded-For / "
        "Forwarded headers are believed: from one of them the client is the right-most address not in the list. "
        "Empty: none; the client is always the TCP peer.",
    )
    _jwt_key: str | None = PrivateAttr(default=None)

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _SUPPORTED_SCHEMES:
            raise ValueError(f"unsupported database scheme {scheme!r}; use sqlite:/// or postgresql://")
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        if scheme == "sqlite":
            value = _sqlite_from_project(value)
        return value

    @field_validator("data_dir")
    @classmethod
    def _resolve_data_dir(cls, value: Path) -> Path:
        # resolved once, when the settings are read: every user of data_dir sees the same absolute folder
        return (PROJECT_ROOT / value.expanduser()).resolve()

    @field_validator("projected_crs")
    @classmethod
    def _check_projected_crs(cls, value: str) -> str:
        try:
            crs = pyproj.CRS.from_user_input(value)
        except pyproj.exceptions.CRSError as exc:
            raise ValueError(f"unknown CRS {value!r}: {exc}") from exc
        if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
            raise ValueError(f"{value!r} is not a projected CRS in metres")
        return value

    @field_validator("profile")
    @classmethod
    def _check_profile(cls, value: str) -> str:
        # checked at start: a typo must stop the service, not make every design answer 422 PROFILE_UNKNOWN
        try:
            get_profile(value)
        except ProfileError as exc:  # a broken profile file of the deployment
            raise ValueError(f"profile {value!r} cannot be loaded: {exc.message}") from None
        except SanlingError:
            raise ValueError(f"no profile {value!r}; known: {', '.join(profile_ids())}") from None
        return value

    @field_validator("depot_stock_file")
    @classmethod
    def _check_depot_stock_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("sms_gateway_url")
    @classmethod
    def _check_sms_gateway_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("sms_gateway_url must start with http:// or https://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        return ",".join(str(network) for network in parse_trusted_proxies(value))

    @model_validator(mode="after")
    def _check_notify_sender(self) -> Settings:
        if self.notify_sender not in ("logging", "sms_http") and ":" not in self.notify_sender:
            raise ValueError("notify_sender must be logging, sms_http or package.module:Class")
        if self.notify_sender == "sms_http" and not self.sms_gateway_url:
            raise ValueError("notify_sender=sms_http needs SANLING_SMS_GATEWAY_URL")
        return self

    @model_validator(mode="after")
    def _check_service_area(self) -> Settings:
        min_lon, min_lat, max_lon, max_lat = self.service_area_wgs84
        if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
            raise ValueError("service_area_wgs84 must be min_lon, min_lat, max_lon, max_lat in degrees")
        return self

    @model_validator(mode="after")
    def _check_auth_secrets(self) -> Settings:
        secret = self.jwt_secret.get_secret_value()
        if secret and len(secret) < _MIN_JWT_SECRET_CHARS:
            raise ValueError(f"jwt_secret must be at least {_MIN_JWT_SECRET_CHARS} characters")
        if self.env == "production":
            if not secret:
                raise ValueError("SANLING_JWT_SECRET must be set when SANLING_ENV=production "
                                 "(the generated development secret is refused)")
            if self.password_hash_profile != "default":
                raise ValueError("SANLING_PASSWORD_HASH_PROFILE=fast is for tests and refused in production")
        return self

    def jwt_signing_key(self) -> str:
        """Return the key that signs access tokens.

        Returns
        -------
        str
            ``jwt_secret`` when set; otherwise (development only, production refuses an empty secret) the
            secret kept in ``data_dir/jwt_secret``, created on first use with mode 0600.
        """
        if self._jwt_key is None:
            secret = self.jwt_secret.get_secret_value()
            self._jwt_key = secret or load_or_create_secret(self.data_dir / JWT_SECRET_FILE)
        return self._jwt_key

    @property
    def factor_overrides(self) -> FactorOverrides:
        """The deployment's overrides of the profile's power and demand factors (None: the profile's)."""
        return FactorOverrides(self.power_factor, self.demand_factor)

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to the embedded SpatiaLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sanling.sqlite').resolve()}"

    @property
    def is_postgres(self) -> bool:
        """Whether the database is PostgreSQL + PostGIS."""
        return self.effective_database_url.startswith("postgresql")

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted_proxies`` as networks (a single address is a /32 or /128)."""
        return parse_trusted_proxies(self.trusted_proxies)


def _sqlite_from_project(url: str) -> str:
    """A SQLite URL whose relative file path is taken from the project folder (absolute, in-memory: unchanged).

    >>> _sqlite_from_project("sqlite:///var/x.sqlite") == f"sqlite:///{PROJECT_ROOT / 'var' / 'x.sqlite'}"
    True
    >>> _sqlite_from_project("sqlite:////srv/x.sqlite"), _sqlite_from_project("sqlite://")
    ('sqlite:////srv/x.sqlite', 'sqlite://')
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, _, query = url[len(prefix):].partition("?")
    if not path or path == ":memory:" or path.startswith("file:") or Path(path).is_absolute():
        return url
    return f"{prefix}{(PROJECT_ROOT / path).resolve()}" + (f"?{query}" if query else "")


@lru_cache(maxsize=8)
def parse_trusted_proxies(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse ``SANLING_TRUSTED_PROXIES``: comma-separated IP addresses or CIDR networks (no host bits set).

    >>> parse_trusted_proxies("10.0.0.0/8, 127.0.0.1")
    (IPv4Network('10.0.0.0/8'), IPv4Network('127.0.0.1/32'))
    >>> parse_trusted_proxies("proxy.internal")
    Traceback (most recent call last):
    ...
    ValueError: 'proxy.internal' is not an IP address or CIDR network
    """
    networks = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            detail = " (host bits set)" if "host bits" in str(exc) else ""
            raise ValueError(f"{item!r} is not an IP address or CIDR network{detail}") from None
    return tuple(networks)


def load_or_create_secret(path: Path) -> str:
    """Read the secret at ``path``, creating it first with a random value and mode 0600 if it is missing.

    Several workers may start at once: the secret is written to a private temporary file and hard-linked
    into place, which fails when another worker won the race, so every worker ends up reading one value.

    Parameters
    ----------
    path : Path
        File holding the secret (one line).

    Returns
    -------
    str
        The secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another worker created it first: use theirs
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < _MIN_JWT_SECRET_CHARS:
        raise ValueError(f"{path} holds fewer than {_MIN_JWT_SECRET_CHARS} characters; delete it to regenerate")
    return secret


class SettingsInvalidError(SanlingError):
    """A ``SANLING_*`` setting is invalid; the service does not start (the CLI exits 2 naming the variable)."""

    code = "SETTINGS_INVALID"
    default_message = "A setting is invalid."


def settings_error(exc: ValidationError) -> SettingsInvalidError:
    """The settings' validation errors as one error naming each ``SANLING_*`` variable at fault."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = f"SANLING_{field.upper()}" if field else "settings"
        problems.append({"setting": variable, "message": str(error["msg"]).removeprefix("Value error, ")})
    text = "; ".join(f"{p['setting']}: {p['message']}" for p in problems)
    return SettingsInvalidError(f"Invalid settings: {text}.", errors=problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment (``SettingsInvalidError`` if invalid)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None
