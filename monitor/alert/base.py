"""The one small interface every alert channel implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from monitor.errors import XborderError


class DeliveryError(XborderError):
    """A channel could not deliver; the alert stays in the outbox and is retried."""


@dataclass(frozen=True)
class AlertMessage:
    id: int
    dedup_key: str
    created_at: str
    severity: str
    summary: str
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dedup_key": self.dedup_key,
            "created_at": self.created_at,
            "severity": self.severity,
            "summary": self.summary,
            **self.payload,
        }


class Alerter(ABC):
    name: ClassVar[str]

    @abstractmethod
    def send(self, alert: AlertMessage) -> None:
        """Deliver one alert or raise DeliveryError; must be safe to call again for the same id."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
