"""The one small interface every alert channel implements."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from monitor.errors import UsageError, XborderError


class DeliveryError(XborderError):
    """A channel could not deliver; the alert stays in the outbox and is retried."""


def secret_from_env(channel: str, var: str | None) -> str | None:
    """The value of environment variable `var` (secrets stay out of the config file); None without one."""
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise UsageError(f"alert channel '{channel}': environment variable {var} is not set")
    return value


@dataclass(frozen=True)
class AlertMessage:
    """One alert as every channel sends it. `payload` holds what/who/where/why/how much/what next
    (see monitor/batch.py); `idempotency_key` is the same on every attempt and every channel, so a
    receiver can drop the repeats that at-least-once delivery may make."""

    id: int
    dedup_key: str
    created_at: str
    severity: str
    summary: str
    payload: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        digest = hashlib.sha256(f"{self.id}|{self.dedup_key}|{self.created_at}".encode()).hexdigest()
        return f"xborder-{self.id}-{digest[:24]}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "dedup_key": self.dedup_key,
            "created_at": self.created_at,
            "severity": self.severity,
            "summary": self.summary,
            **self.payload,
        }


class Alerter(ABC):
    """A channel. Built from its config model (monitor/alert/channels.py) by the registry's
    factory; `send` delivers one alert or raises DeliveryError, and must be safe to repeat."""

    name: ClassVar[str]  # the channel type ("syslog", "webhook", ...)

    @abstractmethod
    def send(self, alert: AlertMessage) -> None:
        """Deliver one alert or raise DeliveryError; must be safe to call again for the same id."""

    @classmethod
    def from_channel(cls, cfg: Any, base_dir: Path) -> Alerter:
        """The alerter for one `alerts.channels` entry (relative paths are against `base_dir`)."""
        raise NotImplementedError(cls.name)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
