"""The e-mail channel against a real SMTP server (aiosmtpd): STARTTLS, AUTH, plain text and HTML, stable Message-ID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.alert.base import DeliveryError
from monitor.alert.channels import EmailChannel
from monitor.alert.smtp import EmailAlerter
from tests.support.alerts import message
from tests.support.smtpd import SmtpServer
from tests.support.syslogd import Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def smtp(certs: Certs) -> Iterator[SmtpServer]:
    s = SmtpServer(certs)
    yield s
    s.close()


def channel(smtp: SmtpServer, certs: Certs, **kw: object) -> EmailChannel:
    base: dict[str, object] = dict(
        name="dpo-mail", type="email", host="localhost", port=smtp.port, username="xborder",
        password_env="XB_SMTP_PW", from_addr="xborder@shop.example", to=["soc@shop.example", "dpo@shop.example"],
        ca_file=str(certs.ca), timeout_s=5,
    )  # fmt: skip
    return EmailChannel.model_validate({**base, **kw})


def test_an_alert_arrives_over_starttls_with_auth_as_text_and_html(smtp: SmtpServer, certs: Certs) -> None:
    msg = message(4, severity="critical")
    EmailAlerter(channel(smtp, certs), "pw", Path(".")).send(msg)
    (got,) = smtp.messages
    assert got["Subject"].startswith("[xborder] CRITICAL: UNAUTHORIZED transfer")
    assert got["Message-ID"] == f"<{msg.idempotency_key}@xborder>" and got["To"] == "soc@shop.example, dpo@shop.example"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in got.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "Destination: api4.example" in parts["text/plain"] and msg.idempotency_key in parts["text/plain"]
    assert "<th align=left>Destination</th><td>api4.example</td>" in parts["text/html"]


def test_html_escapes_what_the_log_put_in_the_alert(smtp: SmtpServer, certs: Certs) -> None:
    msg = message(5)
    evil = type(msg)(msg.id, msg.dedup_key, msg.created_at, msg.severity, "<script>x</script>", {"dest_host": "a<b"})
    EmailAlerter(channel(smtp, certs), "pw", Path(".")).send(evil)
    html_part = next(p for p in smtp.messages[0].walk() if p.get_content_type() == "text/html")
    body = html_part.get_payload(decode=True).decode()
    assert "<script>" not in body and "&lt;script&gt;" in body and "a&lt;b" in body


def test_wrong_password_untrusted_server_and_no_server_are_delivery_errors(
    smtp: SmtpServer, certs: Certs, tmp_path: Path
) -> None:
    with pytest.raises(DeliveryError, match="dpo-mail"):
        EmailAlerter(channel(smtp, certs), "wrong", Path(".")).send(message())
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        EmailAlerter(channel(smtp, certs, ca_file=str(certs.other_ca)), "pw", Path(".")).send(message())
    port = smtp.port
    smtp.close()
    with pytest.raises(DeliveryError, match="refused"):
        EmailAlerter(channel(smtp, certs, port=port), "pw", Path(".")).send(message())
    assert smtp.messages == []


def test_config_refuses_a_password_over_plain_smtp() -> None:
    with pytest.raises(ValueError, match="in clear"):
        EmailChannel.model_validate(dict(name="m", type="email", host="h", security="none", username="u",
                                         password_env="P", from_addr="a@b.c", to=["d@e.f"]))  # fmt: skip
