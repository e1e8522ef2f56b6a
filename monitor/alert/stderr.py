"""Alert channel: a one-line summary per alert on standard error, for a person at the terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, TextIO

from monitor.alert.base import Alerter, AlertMessage


class StderrAlerter(Alerter):
    name: ClassVar[str] = "stderr"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @classmethod
    def from_channel(cls, cfg: object, base_dir: Path) -> StderrAlerter:
        return cls()

    def send(self, alert: AlertMessage) -> None:
        out = self.stream or sys.stderr
        print(f"ALERT #{alert.id} {alert.summary}", file=out, flush=True)
