"""Signed, expiring tokens for links in messages: unsubscribe, the open pixel, clicks.

itsdangerous does the signing (HMAC-SHA256 with JOURNEYMAN_SECRET_KEY over the payload and a
timestamp); each purpose has its own salt, so a token made for one purpose is refused by every
other. Tokens carry ids only (contact and channel; message and link index), never a URL: a
click redirects to the URL stored with the message, so a token cannot be made to point
elsewhere. The reader gives the age limit: unsubscribe links live
JOURNEYMAN_UNSUBSCRIBE_LINK_MAX_AGE_DAYS (at least 30, as CAN-SPAM wants opt-outs to work for
30 days after sending), tracking links JOURNEYMAN_TRACKING_LINK_MAX_AGE_DAYS. Rotating the
secret key invalidates every link already sent. See tests/security/test_tokens.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

UNSUBSCRIBE = "unsubscribe"
OPEN = "track.open"
CLICK = "track.click"


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


@dataclass(frozen=True)
class TrackingClaim:
    message_id: str
    # The link's index in the message's recorded links; None for the open pixel.
    link: int | None = None


def _tracking(signer: Signer, purpose: str) -> URLSafeTimedSerializer:
    return signer._serializer(purpose)


def open_token(signer: Signer, message_id: str) -> str:
    return _tracking(signer, OPEN).dumps({"m": message_id})


def click_token(signer: Signer, message_id: str, link: int) -> str:
    return _tracking(signer, CLICK).dumps({"m": message_id, "l": link})


def read_tracking(signer: Signer, token: str, *, click: bool, max_age: timedelta) -> TrackingClaim:
    """Decode an open (click=False) or click token; InvalidToken for anything else."""
    try:
        data = _tracking(signer, CLICK if click else OPEN).loads(
            token, max_age=int(max_age.total_seconds())
        )
    except SignatureExpired as err:
        raise InvalidToken("this link has expired") from err
    except BadSignature as err:
        raise InvalidToken("this link is not valid") from err
    if not isinstance(data, dict) or not isinstance(data.get("m"), str):
        raise InvalidToken("this link is not valid")
    link = data.get("l")
    if click and not (isinstance(link, int) and link >= 0):
        raise InvalidToken("this link is not valid")
    return TrackingClaim(message_id=data["m"], link=link if click else None)
