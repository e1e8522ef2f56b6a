"""Alert channel: the alert as a JSON POST, signed (HMAC-SHA256 over "<timestamp>.<body>"), with an idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import ClassVar

from monitor import __version__
from monitor.alert.base import Alerter, AlertMessage, DeliveryError, secret_from_env
from monitor.alert.channels import WebhookChannel

SIGNATURE_HEADER = "X-Xborder-Signature"  # "sha256=<hex>"
TIMESTAMP_HEADER = "X-Xborder-Timestamp"  # Unix seconds, part of what is signed (replays show)
IDEMPOTENCY_HEADER = "Idempotency-Key"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """What a receiver recomputes: hex HMAC-SHA256 of b"<timestamp>." + body under the shared secret."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookAlerter(Alerter):
    """One POST per alert; any 2xx is delivered, anything else (or no answer within the timeout) is
    retried by the deliverer with backoff. Receivers should drop repeats by `Idempotency-Key`."""

    name: ClassVar[str] = "webhook"

    def __init__(self, cfg: WebhookChannel, secret: bytes | None) -> None:
        self.cfg, self.secret = cfg, secret

    @classmethod
    def from_channel(cls, cfg: WebhookChannel, base_dir: Path) -> WebhookAlerter:
        secret = secret_from_env(cfg.name, cfg.secret_env)
        return cls(cfg, None if secret is None else secret.encode())

    def send(self, alert: AlertMessage) -> None:
        body = json.dumps(alert.as_dict(), sort_keys=True, default=str, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        headers = {
            **self.cfg.headers,
            "Content-Type": "application/json",
            "User-Agent": f"xborder/{__version__}",
            IDEMPOTENCY_HEADER: alert.idempotency_key,
            TIMESTAMP_HEADER: ts,
        }
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = "sha256=" + signature(self.secret, ts, body)
        req = urllib.request.Request(self.cfg.url, data=body, headers=headers, method="POST")
        where = f"webhook '{self.cfg.name}' {self.cfg.url}"
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:  # noqa: S310 - http(s) only, checked at load
                status = resp.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"{where}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{where}: {reason}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"{where}: HTTP {status}")
