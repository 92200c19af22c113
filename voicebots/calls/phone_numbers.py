"""E.164 phone numbers: '+', country code, subscriber number; 7 to 15 digits in all."""
import re

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def e164_problem(value: str) -> str | None:
    """Why `value` is not an E.164 number, or None when it is one."""
    if E164.match(value):
        return None
    digits = re.sub(r"[\s().-]", "", value)
    if E164.match(digits):
        return f"'{value}' is not an E.164 number: write it without spaces or punctuation, as {digits}."
    if re.fullmatch(r"[1-9]\d{6,14}", digits):
        return f"'{value}' is not an E.164 number: start it with + and the country code, e.g. +{digits}."
    return f"'{value}' is not an E.164 number (+ then the country code and number, e.g. +14155550100)."
