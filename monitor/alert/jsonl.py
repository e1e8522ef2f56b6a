"""Alert channel: one JSON object per line appended to a file (fsynced before it counts as sent)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

from monitor.alert.base import Alerter, AlertMessage, DeliveryError
from monitor.alert.channels import JsonlChannel


class JsonlAlerter(Alerter):
    name: ClassVar[str] = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_channel(cls, cfg: JsonlChannel, base_dir: Path) -> JsonlAlerter:
        path = Path(cfg.path)
        return cls(path if path.is_absolute() else base_dir / path)

    def send(self, alert: AlertMessage) -> None:
        line = json.dumps(alert.as_dict(), sort_keys=True, default=str) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise DeliveryError(f"{self.path}: {exc.strerror}") from exc
