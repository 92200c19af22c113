import secrets
import string

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def random_string(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_auth_id() -> str:
    """Plivo-shaped account id: MA + 18 upper-case letters and digits."""
    return "MA" + random_string(18, _UPPER_ALNUM)
