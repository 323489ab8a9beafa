"""Configuration: a TOML file, every key overridable from the environment.

``HAVAINTO_<SECTION>__<KEY>`` overrides ``[section] key`` (pydantic-settings),
e.g. ``HAVAINTO_TELEGRAM__TOKEN``; secrets are best given that way. With no
file at all Havainto runs on the embedded default: SQLite in the working
directory, the terminal chat, and one demo team.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.config_errors import ConfigError, explain_validation_error, read_toml
from flows.official_codes import COUNTY_CODES, OfficialCodes, is_municipality_number, with_code

log = logging.getLogger("havainto.config")

Role = Literal["worker", "lead", "leader", "admin"]
ROLES: tuple[str, ...] = ("worker", "lead", "leader", "admin")


class Section(BaseModel):
    """A table of the config file: a key it does not know is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class DatabaseConfig(Section):
    # A relative SQLite path written in the config file is taken from the file's folder.
    url: str = Field(
        default="sqlite+aiosqlite:///havainto.db",
        examples=["sqlite:///havainto.db", "postgresql://havainto:secret@db.example.org/havainto"],
    )
    # Events that arrive while the database is unreachable are kept here (one fsync'd
    # file each) and replayed when it is back. One directory per instance.
    spool_dir: str = ".havainto-spool"
    # At start, wait this long for an unreachable database before giving up.
    start_wait_seconds: float = Field(default=120.0, ge=0)


class TelegramConfig(Section):
    token: str = Field(default="", examples=["123456:ABC-your-token-from-BotFather"])
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    bot_username: str = Field(default="", examples=["havainto_bot"])
    poll_timeout: int = 30
    webhook_url: str = Field(default="", examples=["https://havainto.example.fi/telegram/webhook"])
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str = Field(default="", examples=["a-long-random-secret_123"])
    # Telegram's flood limits (30 messages/s per token, 20/min per group) counted in the
    # database for every instance on this token (storage/send_budget.py). Unset: on
    # with PostgreSQL (the multi-instance database), off with SQLite, where each
    # instance keeps PTB's in-process limiter.
    shared_budget: bool | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @property
    def webhook(self) -> bool:
        return bool(self.webhook_url)

    @model_validator(mode="after")
    def _webhook_secret(self) -> TelegramConfig:
        # Telegram sends the secret in X-Telegram-Bot-Api-Secret-Token; without one anybody
        # who finds the URL could post forged updates.
        if self.webhook_url:
            if not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", self.webhook_secret):
                raise ValueError(
                    "telegram.webhook_secret: 16-256 characters of A-Z, a-z, 0-9, _ and - "
                    "are needed when webhook_url is set"
                )
            if not self.webhook_url.startswith("https://"):
                raise ValueError("telegram.webhook_url must be an https:// URL")
        return self


class MatrixConfig(Section):
    homeserver: str = Field(default="", examples=["https://matrix.example.fi"])
    user_id: str = Field(default="", examples=["@havainto:example.fi"])
    password: str = ""
    access_token: str = ""
    device_name: str = "havainto"
    store_path: str = ".havainto-matrix-store"

    @property
    def enabled(self) -> bool:
        return bool(self.homeserver and self.user_id and (self.password or self.access_token))


class TerminalConfig(Section):
    # "auto": the terminal chat runs when no other transport is configured (decided from
    # the transports' registry, bot/transports/__init__.py: terminal_enabled).
    enabled: Literal["auto", "yes", "no"] = "auto"
    # The terminal user is enrolled into this team as a worker (first team when empty).
    auto_enroll: bool = True
    auto_enroll_team: str = Field(default="", examples=["hki-etsiva"])


class FlowConfig(Section):
    draft_reminder_hours: float = 12.0
    edit_window_hours: float = 24.0
    invite_days: int = 7


class RetentionConfig(Section):
    """How long free text lives: after this the codes stay and the words go."""

    # Description, client quote and proposed action are erased this many months after
    # the observation; the coded fields are kept for comparison over the years.
    free_text_months: int = Field(default=24, ge=1)
    # Drafts never completed are erased after this many days untouched.
    draft_days: int = Field(default=30, ge=1)


class RemindersConfig(Section):
    """The friendly nudge to a worker who has logged nothing for a while."""

    enabled: bool = True
    quiet_days: int = Field(default=14, ge=1)


_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hh_mm(value: str) -> str:
    hour, _, minute = value.partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
        raise ValueError("use HH:MM, e.g. 08:00")
    return f"{int(hour):02d}:{int(minute):02d}"


class ScheduleConfig(Section):
    """When digests go out (in ``timezone``) and how missed runs and failures are handled."""

    # Weekly team digest for the previous ISO week: day (mon..sun) and time.
    weekly_day: str = "mon"
    weekly_time: str = "08:00"
    # Monthly leadership summary for the previous month, on the first working day.
    monthly_time: str = "09:00"
    # A run missed while the bot was down still happens when it is back within this time.
    misfire_grace_minutes: int = Field(default=360, ge=1)
    # How often unsent § 29 notices are re-posted and due reminders sent.
    escalation_check_minutes: int = Field(default=10, ge=1)
    # Failed digest deliveries: first retry after this, doubling up to the maximum.
    retry_backoff_minutes: float = Field(default=5.0, gt=0)
    retry_backoff_max_minutes: float = Field(default=360.0, gt=0)
    # Quick retries inside one delivery attempt (429/5xx), the first after this many seconds.
    send_retries: int = Field(default=3, ge=0)
    send_retry_seconds: float = Field(default=2.0, ge=0)
    # A claimed delivery whose process died is taken over after this long.
    lease_minutes: float = Field(default=30.0, gt=0)

    @field_validator("weekly_day")
    @classmethod
    def _day(cls, value: str) -> str:
        day = value.strip().lower()[:3]
        if day not in _DAY_NAMES:
            raise ValueError("weekly_day must be one of mon, tue, wed, thu, fri, sat, sun")
        return day

    @field_validator("weekly_time", "monthly_time")
    @classmethod
    def _time(cls, value: str) -> str:
        return _hh_mm(value)


class EscalationConfig(Section):
    """Notices of a grievance (valvontalaki § 29, formerly SHL § 48) and leaders' answers."""

    # An unacknowledged § 29 notice is first posted again when this many working days
    # (Mon-Fri, Finnish public holidays excluded) have passed since it was posted (and at
    # least ``reminder_hours``), then
    # every ``reminder_hours``. 0: after ``reminder_hours``, weekends or not.
    acknowledge_days: int = Field(default=1, ge=0)
    # An unacknowledged § 29 notice is posted again to the leadership channel this often.
    reminder_hours: float = Field(default=24.0, gt=0)
    # A § 29 notice with no recorded measure (a status) this many days after it was posted
    # reminds the leaders once and tells its notifier once where it stands.
    measures_days: int = Field(default=14, ge=1)
    # Show the reporter's pseudonym on notices; by default only team and entry number
    # (protection from retaliation).
    show_reporter: bool = False
    # A leader's reply with a status text, or a reporter's answer, is awaited this long.
    reply_window_minutes: int = Field(default=60, ge=1)


class KnowledgeConfig(Section):
    """The knowledge path: how often a worker may hear what became of their observations."""

    # At most one message per worker in this many hours (the news are batched).
    news_every_hours: float = Field(default=24.0, gt=0)
    # When the day's news go out (local time, working days and weekends alike).
    news_time: str = Field(default="15:00", pattern=r"^([01]?\d|2[0-3]):[0-5]\d$")


class PrivacyConfig(Section):
    """Numbers that protect people (``digests.numbers``)."""

    # A count of observations or people greater than 0 and smaller than this is shown
    # as "< 5" to leadership, in reports and in the monthly CSV file; quotes reach them
    # only from themes with at least this many observations in the period.
    min_cell: int = Field(default=5, ge=2, le=100)


class TaxonomyConfig(Section):
    """Optional dimensions of an observation, on top of the codes every deployment uses."""

    # The ten support needs of the Social Welfare Act (1301/2014) § 11, offered under
    # "Add details"; off: the worker sees no such question.
    support_needs: bool = False


class CsvConfig(Section):
    """The dialect of every CSV file Havainto writes (export, monthly escalations)."""

    # "semicolon": ';' and a UTF-8 byte order mark, what Excel with Finnish or Swedish
    # regional settings opens as columns. "comma": ',' without a mark (RFC 4180).
    dialect: Literal["semicolon", "comma"] = "semicolon"


class HealthConfig(Section):
    """``GET /healthz`` on a small HTTP server of its own (off by default).

    In webhook mode the webhook server answers ``/healthz`` anyway; this server is
    for polling mode (and for a health port apart from the webhook port).
    """

    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


def _zero_padded(value: Any, digits: int) -> Any:
    """An official code written as a TOML integer (``91``) as the text it stands for
    (``"091"``): TOML has no leading zeros, codes do."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:0{digits}d}" if 0 <= value < 10**digits else str(value)
    if isinstance(value, str):
        return value.strip()
    return value


class AreaConfig(Section):
    id: str = Field(examples=["kallio"])
    name: str = Field(examples=["Kallio"])
    latitude: float | None = Field(default=None, examples=[60.184])
    longitude: float | None = Field(default=None, examples=[24.95])
    # Statistics Finland's three-digit municipality number of the area (Helsinki "091",
    # Espoo "049", Vantaa "092"): exports and reports carry it beside the area.
    municipality: str | None = Field(default=None, examples=["091"])

    @field_validator("municipality", mode="before")
    @classmethod
    def _municipality_text(cls, value: Any) -> Any:
        return _zero_padded(value, 3)

    @field_validator("municipality")
    @classmethod
    def _municipality_number(cls, value: str | None) -> str | None:
        if value is not None and not is_municipality_number(value):
            raise ValueError(
                "a municipality number is three digits, as Statistics Finland writes it "
                '(Helsinki "091", Espoo "049", Vantaa "092")'
            )
        return value


class RegionConfig(Section):
    """A region (a wellbeing services county, or Helsinki): ``[regions.<id>]``.

    The first versions wrote only the display name, ``helsinki = "Helsinki"``; that
    still works and means a region without a code.
    """

    name: str = Field(default="", examples=["Helsinki"])
    # Statistics Finland's code of the wellbeing services county: "01".."21", "90" for
    # the City of Helsinki, "91" for Åland (flows/official_codes.py).
    code: str | None = Field(default=None, examples=["90"])

    @field_validator("code", mode="before")
    @classmethod
    def _code_text(cls, value: Any) -> Any:
        return _zero_padded(value, 2)

    @field_validator("code")
    @classmethod
    def _known_code(cls, value: str | None) -> str | None:
        if value is not None and value not in COUNTY_CODES:
            raise ValueError(
                "not a wellbeing services county code of Statistics Finland; use "
                '"01" to "21" for the counties (e.g. "17" Pohjanmaa), "90" for Helsinki'
            )
        return value


# Keys of the first versions, one per transport; ``chats`` replaces them.
_LEGACY_CHAT_KEYS = {"telegram_chat_id": "telegram", "matrix_room_id": "matrix"}


class HasChats(Section):
    """A place the bot posts to, reachable on any number of transports.

    ``chats = { telegram = -1001234567890, matrix = "!abc:example.org" }``: transport
    name to chat id (Telegram's integer ids are taken as Telegram shows them). The
    first versions' ``telegram_chat_id`` / ``matrix_room_id`` keys still work, with a
    deprecation line in the log.
    """

    chats: dict[str, str] = Field(
        default_factory=dict,
        examples=[{"telegram": -1001234567890, "matrix": "!AbCd:example.fi"}],
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_chat_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _LEGACY_CHAT_KEYS):
            return data
        data = dict(data)
        chats = dict(data.get("chats") or {})
        for key, transport in _LEGACY_CHAT_KEYS.items():
            if key in data:
                value = data.pop(key)
                # Given explicitly, the old key wins (an empty one takes the chat away).
                chats[transport] = "" if value is None else value
                log.warning(
                    "config_deprecated key=%s use=chats.%s where=%s",
                    key,
                    transport,
                    data.get("id", "?"),
                )
        data["chats"] = chats
        return data

    @field_validator("chats", mode="before")
    @classmethod
    def _chat_ids_as_text(cls, value: Any) -> Any:
        """Chat ids as TOML integers (Telegram's -100...) or strings, kept as text."""
        if not isinstance(value, dict):
            return value
        chats: dict[str, str] = {}
        for transport, chat in value.items():
            if chat is None:
                chats[str(transport)] = ""
            elif isinstance(chat, str) or (isinstance(chat, int) and not isinstance(chat, bool)):
                chats[str(transport)] = str(chat).strip()
            else:
                raise ValueError(
                    f"the chat id on {transport} must be a whole number (Telegram's "
                    "-1001234567890) or text in quotes (a Matrix room id)"
                )
        return chats

    def chat_targets(self) -> list[tuple[str, str]]:
        """The (transport, chat id) pairs this place is reachable on, in config order."""
        return [(transport, chat) for transport, chat in self.chats.items() if chat]

    def chat_on(self, transport: str) -> str:
        return self.chats.get(transport, "")


class TeamConfig(HasChats):
    id: str = Field(examples=["hki-etsiva"])
    name: str = Field(examples=["Helsingin etsivät"])
    region: str = Field(examples=["helsinki"])
    language: Literal["fi", "sv", "en"] = "fi"
    areas: list[AreaConfig] = Field(
        default_factory=list, examples=[[{"id": "kallio", "name": "Kallio"}]]
    )
    # The leadership channel responsible for this team (§ 29 notices, escalations).
    leadership: str = Field(default="", examples=["hki-johto"])
    # Quiet workers of this team get one nudge (see [reminders]); false turns it off.
    nudge: bool = True


class LeadershipChannelConfig(HasChats):
    id: str = Field(examples=["hki-johto"])
    name: str = Field(examples=["Helsingin johto"])
    # Empty region: the whole organisation.
    region: str = Field(default="", examples=["helsinki"])
    language: Literal["fi", "sv", "en"] = "fi"


_DEMO_TEAM = TeamConfig(
    id="demo",
    name="Esimerkkitiimi",
    region="demo",
    areas=[
        AreaConfig(id="keskusta", name="Keskusta", latitude=60.170, longitude=24.941),
        AreaConfig(id="kallio", name="Kallio", latitude=60.184, longitude=24.950),
    ],
)

# The tables of the config file being loaded (``load_config``), below the environment.
_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("havainto_file_data", default=None)


BodyLevel = Literal["team", "management", "regional", "national"]


class BodyConfig(Section):
    """A body that decides on proposals (``[[bodies]]``): a team meeting, the county's
    management team, a committee, the county council, a national authority. Presenting a
    proposal names one of these by ``id``, so "presented to the social and health
    committee on 12.3." is a coded fact."""

    id: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    # The name in each language: {fi = "Sosiaali- ja terveyslautakunta", sv = "...", en = "..."}
    name: dict[Literal["fi", "sv", "en"], str]
    level: BodyLevel = "management"
    # Empty: the body serves every region (e.g. a national one).
    region: str = ""

    def label(self, lang: str) -> str:
        names: dict[str, str] = {str(key): value for key, value in self.name.items()}
        return names.get(lang) or names.get("fi") or next(iter(names.values()), self.id)

    @field_validator("name")
    @classmethod
    def _named(cls, name: dict[str, str]) -> dict[str, str]:
        if not any(value.strip() for value in name.values()):
            raise ValueError('a body needs a name, e.g. name = { fi = "Johtoryhmä" }')
        return name


class ReportScheduleConfig(Section):
    """A social report the scheduler makes after each period (``[[reports]]``).

    The scope is a team (``team``), a region (``region``) or, with neither, the whole
    organisation. After each half-year or year (``period``) has ended and ``after_days``
    more days have passed (entries may be dated a week back), on the first working day at
    ``schedule.monthly_time``, the report goes as a PDF (with the appendix of escalations
    as CSV) to the ``leadership`` channel, once, through the delivery ledger.
    """

    region: str = Field(default="", examples=["helsinki"])
    team: str = Field(default="", examples=["hki-etsiva"])
    period: Literal["half-year", "year"] = "half-year"
    # Empty: the leadership channel's language.
    language: Literal["fi", "sv", "en", ""] = ""
    leadership: str = Field(examples=["hki-johto"])
    after_days: int = Field(default=7, ge=1, le=90)

    @model_validator(mode="after")
    def _one_scope(self) -> ReportScheduleConfig:
        if self.region and self.team:
            raise ValueError("a report is of a region or of a team, not both")
        return self


class Config(BaseSettings):
    """Everything Havainto reads at start. See ``config.example.toml`` for each key."""

    model_config = SettingsConfigDict(
        env_prefix="HAVAINTO_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    timezone: str = "Europe/Helsinki"
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    matrix: MatrixConfig = Field(default_factory=MatrixConfig)
    terminal: TerminalConfig = Field(default_factory=TerminalConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    reminders: RemindersConfig = Field(default_factory=RemindersConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    csv: CsvConfig = Field(default_factory=CsvConfig)
    teams: list[TeamConfig] = Field(default_factory=lambda: [_DEMO_TEAM.model_copy(deep=True)])
    leadership: list[LeadershipChannelConfig] = Field(default_factory=list)
    # Regions by the ids used in teams[].region: a display name (helsinki = "Helsinki")
    # or a table with the official code ([regions.helsinki] name = "Helsinki", code = "90").
    regions: dict[str, RegionConfig] = Field(default_factory=dict)
    taxonomy: TaxonomyConfig = Field(default_factory=TaxonomyConfig)
    # Bodies that decide on proposals (the knowledge path), see BodyConfig.
    bodies: list[BodyConfig] = Field(default_factory=list)
    # Social reports made by the scheduler after each half-year or year, see
    # ReportScheduleConfig.
    reports: list[ReportScheduleConfig] = Field(default_factory=list)
    # Settings of further transports, one table each ([transports.signal] ...): the
    # transport's module validates its own table (bot/transports/__init__.py).
    transports: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        data = _FILE_DATA.get()
        if data is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=data))
        return tuple(sources)

    @field_validator("regions", mode="before")
    @classmethod
    def _region_names_only(cls, value: Any) -> Any:
        """``helsinki = "Helsinki"`` (the first versions' form) is a region with a name."""
        if not isinstance(value, dict):
            return value
        return {key: {"name": v} if isinstance(v, str) else v for key, v in value.items()}

    @field_validator("bodies")
    @classmethod
    def _unique_body_ids(cls, bodies: list[BodyConfig]) -> list[BodyConfig]:
        ids = [body.id for body in bodies]
        if len(ids) != len(set(ids)):
            raise ValueError("body ids must be unique")
        return bodies

    def body(self, body_id: str) -> BodyConfig | None:
        return next((body for body in self.bodies if body.id == body_id), None)

    @property
    def shared_send_budget(self) -> bool:
        """Whether Telegram's flood limits are counted in the database for every instance
        (``telegram.shared_budget``; unset: on with PostgreSQL, off with SQLite)."""
        if self.telegram.shared_budget is not None:
            return self.telegram.shared_budget
        return self.database.url.startswith(("postgresql", "postgres:"))

    @field_validator("teams")
    @classmethod
    def _unique_team_ids(cls, teams: list[TeamConfig]) -> list[TeamConfig]:
        ids = [t.id for t in teams]
        if len(ids) != len(set(ids)):
            raise ValueError("team ids must be unique")
        if not teams:
            raise ValueError("at least one team is needed")
        return teams

    @model_validator(mode="after")
    def _leadership_exists(self) -> Config:
        known = {c.id for c in self.leadership}
        for team in self.teams:
            if team.leadership and team.leadership not in known:
                raise ValueError(f"team {team.id}: unknown leadership channel {team.leadership!r}")
        regions = {t.region for t in self.teams}
        teams = {t.id for t in self.teams}
        for number, report in enumerate(self.reports, 1):
            where = f"reports #{number}"
            if report.leadership not in known:
                raise ValueError(f"{where}: unknown leadership channel {report.leadership!r}")
            if report.region and report.region not in regions:
                raise ValueError(f"{where}: no team in region {report.region!r}")
            if report.team and report.team not in teams:
                raise ValueError(f"{where}: unknown team {report.team!r}")
        return self

    def team(self, team_id: str) -> TeamConfig | None:
        return next((t for t in self.teams if t.id == team_id), None)

    def region_name(self, region: str) -> str:
        """A region's display name: from ``[regions]``, else its id."""
        found = self.regions.get(region)
        return found.name if found is not None and found.name else region

    @property
    def region_names(self) -> dict[str, str]:
        """Region id -> display name, for every region of ``[regions]``."""
        return {region: self.region_name(region) for region in self.regions}

    def region_code(self, region: str | None) -> str | None:
        """The region's official county code ("90"), if the config gives one."""
        found = self.regions.get(region) if region else None
        return found.code if found is not None else None

    def region_label(self, region: str) -> str:
        """The display name with the official code beside it: "Helsinki (90)"."""
        return with_code(self.region_name(region), self.region_code(region))

    def official_codes(self) -> OfficialCodes:
        """Every official code of the config, for exports and reports."""
        return OfficialCodes(
            regions={region: r.code for region, r in self.regions.items() if r.code},
            municipalities={
                (team.id, area.id): area.municipality
                for team in self.teams
                for area in team.areas
                if area.municipality
            },
        )

    def leadership_channel(self, channel_id: str) -> LeadershipChannelConfig | None:
        return next((c for c in self.leadership if c.id == channel_id), None)

    def leadership_at(self, transport: str, chat_id: str) -> LeadershipChannelConfig | None:
        """The leadership channel that is this chat, if any."""
        return next((c for c in self.leadership if c.chat_on(transport) == chat_id), None)

    def configured_chats(self, transport: str) -> frozenset[str]:
        """Every team and leadership chat the config names on ``transport``."""
        places: list[HasChats] = [*self.teams, *self.leadership]
        return frozenset(chat for place in places if (chat := place.chat_on(transport)))


def load_config(path: str | Path | None = None, **overrides: object) -> Config:
    """Read ``path`` (TOML) if given, then the environment; ``overrides`` win over both.

    A relative SQLite path in the file is taken from the file's folder (one in an
    environment variable from the working directory). Anything wrong is a
    ``ConfigError`` whose text says where, what and what would be right.
    """
    file = Path(path) if path else None
    data: dict[str, Any] | None = None
    text = ""
    if file is not None:
        data, text = read_toml(file)
        _resolve_sqlite_path(data, file.parent)
    token = _FILE_DATA.set(data)
    try:
        return Config(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(explain_validation_error(error, Config, file, text, data)) from None
    finally:
        _FILE_DATA.reset(token)


def _resolve_sqlite_path(data: dict[str, Any], folder: Path) -> None:
    """Make ``database.url`` absolute when it is a relative SQLite file path."""
    from sqlalchemy.engine import make_url  # here: `havainto --help` stays fast

    database = data.get("database")
    if not isinstance(database, dict):
        return
    url = database.get("url")
    if not isinstance(url, str) or not url.strip():
        return
    try:
        parsed = make_url(url)
    except Exception:  # not a URL at all: validation says so
        return
    path = parsed.database
    if (
        not parsed.drivername.startswith("sqlite")
        or not path
        or path == ":memory:"
        or path.startswith("file:")
        or Path(path).is_absolute()
    ):
        return
    absolute = (folder / Path(path).expanduser()).absolute()
    database["url"] = parsed.set(database=str(absolute)).render_as_string(hide_password=False)
