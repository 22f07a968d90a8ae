"""SMTP delivery (STARTTLS/SSL, auth from the environment); retries and other channels: alerts/channels.py."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from ground.config import Settings


class DeliveryError(RuntimeError):
    """The message was not delivered; its alerts stay unsent."""


def send_smtp(message: EmailMessage, settings: Settings) -> str:
    smtp = settings.smtp
    if not smtp.host:
        raise DeliveryError("SMTP is not configured (smtp.host)")
    try:
        if smtp.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if smtp.username and settings.smtp_password:
                client.login(smtp.username, settings.smtp_password)
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP delivery to {smtp.host}:{smtp.port} failed: {exc}") from exc
    return f"smtp:{smtp.host}:{smtp.port}"
