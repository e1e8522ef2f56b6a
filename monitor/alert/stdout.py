"""Alert channel: one JSON object per line on standard output, for a pipe into another tool."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import ClassVar, TextIO

from monitor.alert.base import Alerter, AlertMessage, DeliveryError
from monitor.alert.channels import StdoutChannel


class StdoutAlerter(Alerter):
    name: ClassVar[str] = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @classmethod
    def from_channel(cls, cfg: StdoutChannel, base_dir: Path) -> StdoutAlerter:
        return cls()

    def send(self, alert: AlertMessage) -> None:
        out = self.stream or sys.stdout
        try:
            out.write(json.dumps(alert.as_dict(), sort_keys=True, default=str, ensure_ascii=False) + "\n")
            out.flush()
        except (OSError, ValueError) as exc:  # a closed pipe, a closed stream
            raise DeliveryError(f"stdout: {exc}") from exc
