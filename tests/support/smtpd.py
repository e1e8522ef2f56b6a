"""A real SMTP server for e-mail alerts (aiosmtpd): STARTTLS required, AUTH required over TLS, messages kept."""

from __future__ import annotations

import socket
import ssl
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.syslogd import Certs


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    """Listens on 127.0.0.1; accepts `user`/`password` only, and only after STARTTLS."""

    def __init__(self, certs: Certs, user: str = "xborder", password: str = "pw") -> None:
        self.user, self.password = user, password
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(certs.server_cert), str(certs.server_key))
        self.handler = _Handler()
        self.port = free_port()  # aiosmtpd's start-up probe connects to the port: it cannot be 0
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self._auth,
        )
        self.controller.start()

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        given = (data.login.decode(), data.password.decode()) if isinstance(data, LoginPassword) else None
        ok = given == (self.user, self.password)
        return AuthResult(success=ok)

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    def close(self) -> None:
        if self.controller._thread is not None:  # closing twice (a test stopped it) is fine
            self.controller.stop()
