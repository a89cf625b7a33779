"""Bearer token authentication of the API (docs/spec.md section 5), one token per account.

Order of checks on every authenticated call, so each answer reveals no more than it must:
banned address (429) → token missing or wrong (401, the same answer whether or not any
account exists; failures count towards the shared ban) → per-token rate limit (429) →
integration disabled (403) → for uploads only: mode is not API (403), status stopped (409).
The token check is `bans.guarded_login` and the last three are `services.admission.admit`
(channel api); this module only maps them to answers.
"""
from __future__ import annotations

import hashlib

from flask import current_app, request

from ..models import Account
from ..services import bans, integration
from ..services.admission import Channel, Outcome, Reason, admit
from .answers import ApiError
from .ratelimit import limiter_for

REALM = 'Bearer realm="Renkei API"'


def _bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`, or None when the header is missing or not Bearer."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _banned(seconds: int) -> ApiError:
    """The temporary ban's answer, with the seconds actually left in Retry-After."""
    return ApiError(429, "banned", f"認証の失敗が続いたため、このアドレスからのアクセスを一時的に止めています"
                    f"(残り{seconds}秒)。", "Too many failed attempts from this address; try again later.",
                    {"Retry-After": str(max(1, seconds))})


def _too_soon(seconds: int) -> ApiError:
    return ApiError(429, "rate_limited", f"認証に失敗した直後のため、{seconds}秒後にお試しください。",
                    "An attempt from this address failed just now; try again later.",
                    {"Retry-After": str(max(1, seconds))})


# How each admission reason is answered (the Japanese text is the admission's).
_REFUSALS: dict[Reason, tuple[int, str, str]] = {
    Reason.DISABLED: (403, "integration_disabled", "Integration is not enabled for this account."),
    Reason.MODE: (403, "mode_not_api", "The account's integration mode is not API."),
    Reason.STOPPED: (409, "integration_stopped", "Integration is stopped for this account."),
}


def authenticate(*, upload: bool = False) -> Account:
    """Return the account of the request's token, or raise the ApiError the caller must see."""
    address = request.remote_addr or "unknown"
    token = _bearer_token()
    if token is None:
        ends = bans.ban_end(address)
        if ends is not None:
            raise _banned(bans.seconds_left(ends, bans.clock()))
        raise ApiError(401, "unauthorized", "APIトークンが必要です(Authorization: Bearer <トークン>)。",
                       "An API token is required (Authorization: Bearer <token>).",
                       {"WWW-Authenticate": REALM})
    # Counted before the token is looked up, so concurrent guesses cannot pass the threshold.
    result = bans.guarded_login(address, None, lambda: integration.account_for_token(token))
    if result.verdict is bans.Verdict.BANNED:
        raise _banned(result.retry_after)
    if result.verdict is bans.Verdict.TOO_SOON:
        raise _too_soon(result.retry_after)
    if not result.passed:
        # The same answer for every wrong token: it must not tell whether any account exists.
        raise ApiError(401, "unauthorized", "APIトークンが正しくありません。", "The API token is invalid.",
                       {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
    account = result.subject
    retry_after = limiter_for(current_app).hit(_token_key(token))
    if retry_after is not None:
        raise ApiError(429, "rate_limited", "リクエストが多すぎます。しばらくしてからお試しください。",
                       "Too many requests; try again later.", {"Retry-After": str(retry_after)})
    admission = admit(account, Channel.API)
    if admission.outcome is Outcome.DISABLED or (upload and not admission.accepted):
        status, code, en = _REFUSALS[admission.reason]
        raise ApiError(status, code, admission.text, en)
    return account
