"""The one e-mail address rule of Renkei: senders, report addresses, user logins, members.

Every syntactically valid address is accepted (RFC 5322 dot-atom local part, SMTPUTF8 and IDN
included), intranet domains too: `.local` (Active Directory), `.internal`, `.lan`, `.test`,
dotless hosts. Renkei never sends to the open internet on its own, so "not globally
deliverable" is no reason to refuse an address. Quoted local parts, IP-literal domains and
display names are refused (no mail system of our users needs them; they would only make two
spellings of one sender).
"""
from __future__ import annotations

import unicodedata

# Placed after an intranet domain so that email-validator checks everything but the special-use rule.
_NEUTRAL_SUFFIX = ".jp"


class InvalidAddress(ValueError):
    """The text is not an e-mail address."""


def normalize_address(text: str) -> str:
    """Return the address in its normal form (NFKC, domain lower case and Unicode); raise InvalidAddress when it is not one."""
    # email-validator (and the idna and dnspython it loads) is imported here: every process imports
    # this module through the app, most never check an address.
    from email_validator import EmailNotValidError

    address = unicodedata.normalize("NFKC", text or "").strip()
    try:
        return _validated(address)
    except EmailNotValidError as error:
        local, at, domain = address.rpartition("@")
        if not (at and _special_use(domain)):
            raise InvalidAddress(str(error)) from None
    # A special-use domain is refused by email-validator whatever its options; check the rest alone.
    try:
        return _validated(f"{local}@{domain}{_NEUTRAL_SUFFIX}")[: -len(_NEUTRAL_SUFFIX)]
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None


def is_address(text: str) -> bool:
    """Tell whether `text` is an e-mail address by the rule of `normalize_address`."""
    try:
        normalize_address(text)
    except InvalidAddress:
        return False
    return True


def _validated(address: str) -> str:
    from email_validator import validate_email

    return validate_email(address, check_deliverability=False, globally_deliverable=False).normalized


def _special_use(domain: str) -> bool:
    import email_validator

    name = domain.strip().lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in email_validator.SPECIAL_USE_DOMAIN_NAMES)
