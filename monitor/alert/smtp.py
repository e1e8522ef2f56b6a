"""Alert channel: one e-mail per alert over SMTP (STARTTLS or TLS, optional AUTH), plain text with an HTML part."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, ClassVar

from monitor.alert.base import Alerter, AlertMessage, DeliveryError, secret_from_env
from monitor.alert.channels import EmailChannel

# what/who/where/why/how much/what next, in the order a reader needs them
FIELDS = [
    ("What", "outcome"), ("Article", "article"), ("System", "system"), ("Data", "data_categories"),
    ("Sources", "source_ips"), ("Users", "source_users"), ("Destination", "dest_host"), ("IP", "dest_ip"),
    ("Country", "country"), ("Located in", "located_country"), ("Provider", "provider"),
    ("Provider seat", "provider_seat"), ("Basis", "basis"), ("Rule", "rule_id"), ("Rule file", "rule_location"),
    ("Requests", "requests"), ("Bytes in", "bytes_in"), ("Bytes out", "bytes_out"), ("First seen", "first_seen"),
    ("Last seen", "last_seen"), ("Explain", "explain"), ("Evidence", "evidence_query"),
    ("Evidence batch", "evidence_batch"), ("Runbook", "runbook_url"),
]  # fmt: skip


def _text(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, list) else str(v)


def build_message(alert: AlertMessage, cfg: EmailChannel) -> EmailMessage:
    d = alert.as_dict()
    rows = [(label, _text(d[k])) for label, k in FIELDS if d.get(k) not in (None, "", [])]
    msg = EmailMessage()
    msg["Subject"] = f"[xborder] {alert.severity.upper()}: {alert.summary}"[:250]
    msg["From"], msg["To"] = cfg.from_addr, ", ".join(cfg.to)
    msg["Date"] = formatdate(usegmt=True)
    # a resent alert has the same Message-ID: mail systems and readers can drop the repeat
    msg["Message-ID"] = f"<{alert.idempotency_key}@xborder>"
    msg["X-Xborder-Idempotency-Key"] = alert.idempotency_key
    width = max((len(label) for label, _ in rows), default=0)
    plain = [alert.summary, ""] + [f"{label + ':':<{width + 1}} {value}" for label, value in rows]
    msg.set_content("\n".join(plain) + f"\n\nIdempotency key: {alert.idempotency_key}\n")
    cells = "".join(f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    msg.add_alternative(
        f"<html><body><p><b>{html.escape(alert.summary)}</b></p><table>{cells}</table>"
        f"<p><small>Idempotency key: {html.escape(alert.idempotency_key)}</small></p></body></html>",
        subtype="html",
    )
    return msg


class EmailAlerter(Alerter):
    name: ClassVar[str] = "email"

    def __init__(self, cfg: EmailChannel, password: str | None, base_dir: Path) -> None:
        self.cfg, self.password = cfg, password
        ca = None if cfg.ca_file is None else Path(cfg.ca_file)
        self.ca = None if ca is None else (ca if ca.is_absolute() else base_dir / ca)

    @classmethod
    def from_channel(cls, cfg: EmailChannel, base_dir: Path) -> EmailAlerter:
        return cls(cfg, secret_from_env(cfg.name, cfg.password_env), base_dir)

    def send(self, alert: AlertMessage) -> None:
        cfg = self.cfg
        where = f"email '{cfg.name}' {cfg.host}:{cfg.effective_port}"
        try:
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            port, timeout = cfg.effective_port, cfg.timeout_s
            if cfg.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, port, timeout=timeout, context=context)
            else:
                smtp = smtplib.SMTP(cfg.host, port, timeout=timeout)
            with smtp:
                if cfg.security == "starttls":
                    smtp.starttls(context=context)  # refuses to go on in clear if the server cannot
                if cfg.username and self.password:
                    smtp.login(cfg.username, self.password)
                refused = smtp.send_message(build_message(alert, cfg))
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{where}: {exc}") from exc
        if refused:
            raise DeliveryError(f"{where}: recipients refused: {', '.join(sorted(refused))}")
