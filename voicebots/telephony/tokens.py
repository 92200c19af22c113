"""Short-lived tokens that let exactly one call's Plivo stream connect."""
from django.core import signing

_SALT = "voicebots.telephony.stream"


def stream_token(call_id) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(str(call_id))


def call_id_from_token(token: str, max_age_s: int) -> str | None:
    """The call id the token was made for, or None when it is forged or expired."""
    try:
        return signing.TimestampSigner(salt=_SALT).unsign(token, max_age=max_age_s)
    except signing.BadSignature:  # includes SignatureExpired
        return None
