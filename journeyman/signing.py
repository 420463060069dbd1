"""Signed, expiring tokens for links in messages (unsubscribe now; tracking later).

itsdangerous does the signing (HMAC-SHA256 over the payload and a timestamp); each purpose has
its own salt, so a token made for one purpose is refused by every other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

UNSUBSCRIBE = "unsubscribe"


class InvalidToken(ValueError):
    """The token was forged, edited, made for another purpose, or has expired."""


@dataclass(frozen=True)
class UnsubscribeClaim:
    contact_id: str
    channel: str


class Signer:
    def __init__(self, secret_key: str) -> None:
        self._secret_key = secret_key

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret_key, salt=f"journeyman.{purpose}")

    def unsubscribe_token(self, contact_id: str, channel: str) -> str:
        return self._serializer(UNSUBSCRIBE).dumps({"c": contact_id, "ch": channel})

    def read_unsubscribe(self, token: str, max_age: timedelta) -> UnsubscribeClaim:
        try:
            data = self._serializer(UNSUBSCRIBE).loads(token, max_age=int(max_age.total_seconds()))
        except SignatureExpired as err:
            raise InvalidToken("this link has expired") from err
        except BadSignature as err:
            raise InvalidToken("this link is not valid") from err
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            raise InvalidToken("this link is not valid")
        return UnsubscribeClaim(contact_id=data["c"], channel=str(data.get("ch", "email")))
