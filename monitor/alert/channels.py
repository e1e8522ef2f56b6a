"""Alert stage: the `alerts.channels` config (one model per channel type) and routing by severity, system, outcome."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from monitor.policy.register import Strict

SEVERITIES = ("info", "low", "medium", "high", "critical")
OUTCOMES = ("unauthorized", "review", "permitted", "lockout", "reminder", "test")


class Route(Strict):
    """Which alerts a channel gets: all three tests must pass (an empty list passes everything)."""

    min_severity: Literal["info", "low", "medium", "high", "critical"] = "info"
    systems: list[str] = []
    outcomes: list[str] = []

    @field_validator("outcomes")
    @classmethod
    def _known_outcomes(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if o not in OUTCOMES]
        if bad:
            raise ValueError(f"unknown outcome {bad[0]!r}; known: {', '.join(OUTCOMES)}")
        return v

    def accepts(self, severity: str, system: str | None, outcome: str | None) -> bool:
        if SEVERITIES.index(severity if severity in SEVERITIES else "info") < SEVERITIES.index(self.min_severity):
            return False
        if self.systems and system not in self.systems:
            return False
        return not (self.outcomes and outcome not in self.outcomes)


class ChannelBase(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
    route: Route = Route()
    # past this many alerts a minute, the rest are held back and sent as one summary (critical
    # alerts always go through); None: no limit
    max_per_minute: Annotated[int | None, Field(ge=1)] = None


class WebhookChannel(ChannelBase):
    """POST of the alert as JSON, signed with HMAC-SHA256 over "<timestamp>.<body>"."""

    type: Literal["webhook"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    # the HMAC key is read from this environment variable, never from the config file
    secret_env: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    headers: dict[str, str] = {}


class SyslogChannel(ChannelBase):
    """RFC 5424 over UDP (RFC 5426), TCP (RFC 6587 octet counting) or TLS (RFC 5425)."""

    type: Literal["syslog"]
    host: str = "127.0.0.1"
    port: Annotated[int | None, Field(ge=1, le=65535)] = None  # default: 514 (udp, tcp), 6514 (tls)
    transport: Literal["udp", "tcp", "tls"] = "tcp"
    format: Literal["cef", "json"] = "cef"
    facility: Annotated[int, Field(ge=0, le=23)] = 13  # log audit
    app_name: Annotated[str, Field(pattern=r"^[!-~]{1,48}$")] = "xborder"
    ca_file: str | None = None  # tls: trust these CAs (default: the system's)
    cert_file: str | None = None  # tls: client certificate, if the receiver asks for one
    key_file: str | None = None
    server_name: str | None = None  # tls: name to verify (default: host)
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0

    @model_validator(mode="after")
    def _tls_only(self) -> SyslogChannel:
        if self.transport != "tls" and (self.ca_file or self.cert_file or self.key_file or self.server_name):
            raise ValueError("ca_file, cert_file, key_file and server_name apply to transport: tls only")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (6514 if self.transport == "tls" else 514)


class EmailChannel(ChannelBase):
    """SMTP submission: STARTTLS (or implicit TLS), optional authentication, plain text and HTML."""

    type: Literal["email"]
    host: str
    port: Annotated[int | None, Field(ge=1, le=65535)] = None  # default: 587, or 465 with security: tls
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None  # the password is read from this environment variable
    from_addr: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]], Field(min_length=1)]
    ca_file: str | None = None  # trust these CAs (default: the system's)
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0

    @model_validator(mode="after")
    def _auth_needs_both(self) -> EmailChannel:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        if self.username and self.security == "none":
            raise ValueError("authentication without TLS would send the password in clear: use starttls or tls")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (465 if self.security == "tls" else 587)


class JsonlChannel(ChannelBase):
    """One JSON object per line appended to a file, fsynced."""

    type: Literal["jsonl"]
    path: str


class StdoutChannel(ChannelBase):
    """One JSON object per line on standard output."""

    type: Literal["stdout"]


Channel = Annotated[
    WebhookChannel | SyslogChannel | EmailChannel | JsonlChannel | StdoutChannel, Field(discriminator="type")
]


class RetrySettings(Strict):
    """Backoff between attempts of one delivery: initial * 2^(attempts-1), capped, +/- jitter."""

    initial_s: Annotated[float, Field(gt=0)] = 5.0
    max_s: Annotated[float, Field(gt=0)] = 600.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.2


def channel_summary(ch: Any) -> str:
    """One line naming where a channel delivers, for `xborder check` and `alerts list`."""
    if isinstance(ch, WebhookChannel):
        return f"webhook → {ch.url}"
    if isinstance(ch, SyslogChannel):
        return f"syslog {ch.transport}://{ch.host}:{ch.effective_port} ({ch.format})"
    if isinstance(ch, EmailChannel):
        return f"email via {ch.host}:{ch.effective_port} → {', '.join(ch.to)}"
    if isinstance(ch, JsonlChannel):
        return f"jsonl → {ch.path}"
    return "stdout"
