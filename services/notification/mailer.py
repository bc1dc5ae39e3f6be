"""Sending an email over SMTP (SAGASHOP_SMTP_URL), synchronously: the consumer calls it inside its transaction, off
the event loop, so a failure rolls the notification back and the event comes again."""

import logging
import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.utils import formataddr, formatdate
from ipaddress import ip_address
from urllib.parse import unquote, urlsplit

from .domain import Email

TIMEOUT_SECONDS = 10.0  # of the connection and of each SMTP command
REMEMBERED = 4096  # ids of the emails sent last, not sent again by this process (see Mailer)
PORTS = {"smtp": 25, "smtps": 465}
FORM = "smtp://[user:password@]host[:port] or smtps://[user:password@]host[:port]"
UTF8 = Charset("utf-8")
UTF8.body_encoding = QP  # a body that stays readable where it is mostly ASCII
log = logging.getLogger(__name__)


class BadSmtpUrl(ValueError):
    """SAGASHOP_SMTP_URL cannot be used; the message says why and never repeats the URL (it may hold a password)."""


class NoSmtpServer(Exception):
    """No SMTP server is configured: every email fails until one is."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool  # TLS from the start (smtps); otherwise STARTTLS when the server offers it
    user: str | None = None
    password: str | None = field(default=None, repr=False)


def smtp_server(url: str) -> SmtpServer:
    """The server an SMTP URL names, or BadSmtpUrl."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is no number or out of range
        raise BadSmtpUrl(f"SAGASHOP_SMTP_URL has a bad port; the form is {FORM}") from None
    if parts.scheme not in PORTS:
        raise BadSmtpUrl(f"SAGASHOP_SMTP_URL must start with smtp:// or smtps://; the form is {FORM}")
    if not parts.hostname:
        raise BadSmtpUrl(f"SAGASHOP_SMTP_URL names no host; the form is {FORM}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadSmtpUrl(f"SAGASHOP_SMTP_URL has a path, query or fragment, which SMTP has no use for; the form is "
                         f"{FORM}")
    if (parts.username is None) != (parts.password is None):
        raise BadSmtpUrl(f"SAGASHOP_SMTP_URL has a user without a password or the reverse; the form is {FORM}")
    return SmtpServer(parts.hostname, port or PORTS[parts.scheme], parts.scheme == "smtps",
                      unquote(parts.username) if parts.username is not None else None,
                      unquote(parts.password) if parts.password is not None else None)


def message(email: Email, sender: str) -> Message:
    """The email as sent: its Message-ID the same each time it is sent again. Built with the `email` package's
    compat32 `Message`: its default policy took six times the CPU for the same bytes (two emails per checkout)."""
    msg = Message()
    msg.set_payload(email.body, UTF8)  # (text/plain, MIME-Version and the transfer encoding with it)
    msg["From"] = _header(sender)
    msg["To"] = formataddr((_one_line(email.to.name), _one_line(email.to.email)), charset="utf-8")
    msg["Subject"] = _header(email.subject)
    msg["Message-ID"] = f"<{email.id}@sagashop>"
    msg["Date"] = formatdate(usegmt=True)
    return msg


def _header(value: str) -> str:
    """A header's value as written: in RFC 2047 words where it is not ASCII."""
    return value if _one_line(value).isascii() else Header(value, "utf-8").encode()


def _one_line(value: str) -> str:
    """`value`, or ValueError if it holds a line break, which would start a header of the sender's choosing
    (compat32 does not check)."""
    if "\r" in value or "\n" in value:
        raise ValueError("an email header's value may not hold a line break")
    return value


class Mailer:
    """Sends over one SMTP session kept open from send to send (a session per email cost more CPU, on both ends,
    than the emails). A session the server closed while idle is found out by the next send, which then starts a
    new one and sends once more; any other failure (a refusal, no answer in time: the message may have been taken)
    is raised, the session dropped.

    It remembers the ids of the last REMEMBERED emails it sent and does not send one of them again: the consumer
    sends a batch's emails before its commit, and if a later one fails, the batch rolls back and its events are
    applied again one by one, asking for the emails already sent once more."""

    def __init__(self, url: str | None, sender: str, timeout: float = TIMEOUT_SECONDS) -> None:
        """`url`: SAGASHOP_SMTP_URL, checked now (BadSmtpUrl); None sends nothing, each send fails."""
        self.server = smtp_server(url) if url else None
        self.sender, self.timeout = sender, timeout
        # made once: it loads the system's CA certificates, which cost more CPU than the rest of a send
        self.context = ssl.create_default_context()
        self.session: smtplib.SMTP | None = None
        self.lock = threading.Lock()  # sends come from the database's worker threads
        self.sent: dict[str, None] = {}  # ids, oldest first

    def send(self, email: Email) -> None:
        """Sends `email`, or raises (OSError, smtplib.SMTPException, NoSmtpServer)."""
        if self.server is None:
            raise NoSmtpServer("SAGASHOP_SMTP_URL is not set: no email can be sent")
        with self.lock:
            if email.id in self.sent:
                return
            self._send(self.server, message(email, self.sender))
            self.sent[email.id] = None
            if len(self.sent) > REMEMBERED:
                del self.sent[next(iter(self.sent))]

    def _send(self, server: SmtpServer, msg: Message) -> None:
        if self.session is not None:
            try:
                self.session.send_message(msg)
                return
            except (smtplib.SMTPServerDisconnected, ConnectionError) as e:  # closed while idle: not sent
                log.info("the SMTP session was closed (%s): sending in a new one", type(e).__name__)
                self._close()
            except BaseException:  # the server's answer, or no answer in time: the consumer tries again later
                self._close()
                raise
        self.session = self._open(server)
        try:
            self.session.send_message(msg)
        except BaseException:
            self._close()
            raise

    def close(self) -> None:
        with self.lock:
            self._close()

    def _open(self, s: SmtpServer) -> smtplib.SMTP:
        client = (smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=self.context) if s.tls
                  else smtplib.SMTP(s.host, s.port, timeout=self.timeout))
        try:
            client.ehlo()
            secure = s.tls
            if not secure and client.has_extn("starttls"):
                client.starttls(context=self.context)
                client.ehlo()
                secure = True
            if s.user is not None and s.password is not None:
                if not (secure or loopback(s.host)):
                    raise smtplib.SMTPNotSupportedError(
                        f"{s.host} offers no STARTTLS: the SMTP password is not sent in the clear (smtps:// uses TLS)")
                client.login(s.user, s.password)
        except BaseException:
            client.close()
            raise
        return client

    def _close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                session.quit()
            except OSError:  # gone already
                session.close()


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
