"""One contract over every registered alert channel: the whole alert with its key, safe repeats, loud failures."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.alert import ALERTERS
from monitor.alert.base import Alerter, DeliveryError
from monitor.alert.channels import EmailChannel, SyslogChannel, WebhookChannel
from monitor.alert.jsonl import JsonlAlerter
from monitor.alert.smtp import EmailAlerter
from monitor.alert.stderr import StderrAlerter
from monitor.alert.stdout import StdoutAlerter
from monitor.alert.syslog import SyslogAlerter
from monitor.alert.webhook import WebhookAlerter
from tests.support.alerts import message
from tests.support.smtpd import SmtpServer, free_port
from tests.support.syslogd import Syslogd, make_certs
from tests.support.webhookd import WebhookReceiver


@dataclass
class Harness:
    """A working channel and what its receiver got (each as the alert's dict, or its summary line)."""

    alerter: Alerter
    received: Callable[[], list[Any]]
    broken: Callable[[], Alerter] | None  # the same channel with its receiver unreachable


@contextmanager
def jsonl(tmp: Path) -> Iterator[Harness]:
    path = tmp / "alerts.jsonl"
    blocked = tmp / "blocked"
    blocked.write_text("a file where a directory should be")
    yield Harness(
        JsonlAlerter(path),
        lambda: [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else [],
        lambda: JsonlAlerter(blocked / "alerts.jsonl"),
    )


@contextmanager
def stdout(tmp: Path) -> Iterator[Harness]:
    buf = io.StringIO()
    closed = io.StringIO()
    closed.close()
    yield Harness(StdoutAlerter(buf), lambda: [json.loads(x) for x in buf.getvalue().splitlines()],
                  lambda: StdoutAlerter(closed))  # fmt: skip


@contextmanager
def stderr(tmp: Path) -> Iterator[Harness]:
    buf = io.StringIO()
    yield Harness(StderrAlerter(buf), lambda: buf.getvalue().splitlines(), None)


@contextmanager
def webhook(tmp: Path) -> Iterator[Harness]:
    r = WebhookReceiver(b"k")
    cfg = WebhookChannel(name="hook", type="webhook", url=r.url, timeout_s=2)
    dead = WebhookReceiver(None)
    dead.down()
    dead_cfg = WebhookChannel(name="hook", type="webhook", url=dead.url, timeout_s=2)
    try:
        yield Harness(WebhookAlerter(cfg, b"k"), lambda: [e["body"] for e in r.received],
                      lambda: WebhookAlerter(dead_cfg, b"k"))  # fmt: skip
    finally:
        r.close()


@contextmanager
def syslog(tmp: Path) -> Iterator[Harness]:
    with Syslogd("tcp") as d:
        cfg = SyslogChannel(name="soc", type="syslog", port=d.port, transport="tcp", format="json", timeout_s=2)
        dead = Syslogd("tcp").start()
        dead.stop()
        dead_cfg = SyslogChannel(name="soc", type="syslog", port=dead.port, transport="tcp", timeout_s=2)

        def received() -> list[Any]:
            time.sleep(0.2)  # frames in flight
            return [json.loads(m.parsed["msg"]) for m in d.messages if m.parsed]

        yield Harness(SyslogAlerter(cfg, tmp), received, lambda: SyslogAlerter(dead_cfg, tmp))


@contextmanager
def email(tmp: Path) -> Iterator[Harness]:
    certs = make_certs(tmp / "certs")
    server = SmtpServer(certs)
    cfg = EmailChannel(name="mail", type="email", host="localhost", port=server.port, username="xborder",
                       password_env="X", from_addr="x@a.example", to=["a@a.example"],
                       ca_file=str(certs.ca))  # fmt: skip
    down = EmailChannel.model_validate({**cfg.model_dump(), "port": free_port()})

    def received() -> list[Any]:
        return [_mail_fields(m) for m in server.messages]

    try:
        yield Harness(EmailAlerter(cfg, "pw", tmp), received, lambda: EmailAlerter(down, "pw", tmp))
    finally:
        server.close()


def _mail_fields(m: Any) -> str:
    """A mail is for a person: its subject and text stand in for the summary line, its id for the key."""
    text = next(p for p in m.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    return f"#{m['Message-ID'].split('-')[1]} {text}"


HARNESSES: dict[str, Callable[[Path], Any]] = {
    "email": email,
    "syslog": syslog,
    "jsonl": jsonl,
    "stdout": stdout,
    "stderr": stderr,
    "webhook": webhook,
}


def test_every_registered_channel_has_a_harness() -> None:
    assert set(ALERTERS) <= set(HARNESSES), f"no contract harness for {set(ALERTERS) - set(HARNESSES)}"


@pytest.mark.parametrize("name", sorted(ALERTERS))
def test_channel_contract(name: str, tmp_path: Path) -> None:
    msg, other = message(1), message(2, severity="critical")
    with HARNESSES[name](tmp_path) as h:
        h.alerter.send(msg)
        h.alerter.send(msg)  # at-least-once: a repeat must be accepted, and be recognisable
        h.alerter.send(other)
        got = h.received()
        assert len(got) == 3
        if isinstance(got[0], dict):
            assert got[0] == json.loads(json.dumps(msg.as_dict(), default=str))
            assert [g["idempotency_key"] for g in got] == [msg.idempotency_key] * 2 + [other.idempotency_key]
        else:  # a line for a person: says which alert and what happened
            assert f"#{msg.id}" in got[0] and msg.summary in got[0]
        h.alerter.close()
        if h.broken is not None:
            with pytest.raises(DeliveryError):
                h.broken().send(msg)


CONFIGURED = {  # one minimal `alerts.channels` entry per configurable type
    "webhook": {"type": "webhook", "url": "http://127.0.0.1:9/x"},
    "syslog": {"type": "syslog", "transport": "udp", "port": 9},
    "email": {"type": "email", "host": "localhost", "from_addr": "a@b.example", "to": ["c@d.example"]},
    "jsonl": {"type": "jsonl", "path": "alerts.jsonl"},
    "stdout": {"type": "stdout"},
}


def test_every_configurable_channel_is_built_from_its_config(tmp_path: Path) -> None:
    from monitor.alert.build import make_channels
    from monitor.settings import load_config

    types = set(ALERTERS) - {"stderr"}  # stderr is `alerts.stderr: true`, not a channel entry
    assert types == set(CONFIGURED)
    channels = [{"name": f"ch-{t}", **cfg} for t, cfg in CONFIGURED.items()]
    path = tmp_path / "xborder.yaml"
    path.write_text(json.dumps({"alerts": {"stderr": True, "jsonl": None, "channels": channels}}))
    built = make_channels(load_config(str(path)))
    assert {n: type(a).name for n, a in built.alerters.items()} == {
        **{f"ch-{t}": t for t in CONFIGURED}, "stderr": "stderr"}  # fmt: skip
    built.close()
