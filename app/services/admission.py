"""Admission: may this account receive a file on this channel now, and what happens otherwise?

One decision for every channel; the adapters (servers/mailhandler.py, servers/ftpauth.py,
services/ftpcheck.py, api/routes.py) only map its outcome to their protocol's answer.

The rules, in this order (the first that applies decides):
1. integration disabled (外部連携設定が無効), or no settings row → DISABLED;
2. data mode (データ連動方式) is not the channel's → mail: DISCARD (recorded, the sender list
   is not checked: it belongs to the mail mode); FTP and API: REFUSE;
3. mail only, each check when its input is known: the peer address is outside the account's
   送信元サーバー (when any is set) → REFUSE; the envelope sender (MAIL FROM) is a bounce `<>`
   or not one of the 送信元メールアドレス → REFUSE; the From: address is not one of them, or
   could not be read → REFUSE;
4. status 連動稼働停止 → mail: DISCARD (recorded); FTP: HOLD (the login works, files stay in
   the home until a check after re-activation); API: REFUSE (409);
5. otherwise ACCEPT.

Every outcome but ACCEPT carries its reason and its Japanese text (the 取込履歴 note of a
mail, the flash of 今すぐチェック, the API's message), written here once per channel.
Before SMTP DATA the From: is not known (`sender` omitted): at RCPT the peer and the envelope
sender are checked, and the full answer comes after DATA, with the From:.

After `250` the spool drain knows what DKIM and SPF said: `authenticated()` applies the
account's 送信元の認証 (off by default) to them.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ..enums import LinkStatus, Mode, SenderAuth

if TYPE_CHECKING:  # the decision itself needs no database: SMTP decides on a snapshot
    from ..models import Account, IntegrationSettings
    from .senderauth import Authentication


# A channel that asks admission is one of the three データ連動方式 (the screen and the CLI never ask).
Channel = Mode


class Outcome(StrEnum):
    ACCEPT = "accept"      # take the file
    DISCARD = "discard"    # take it from the sender, keep nothing, record why
    REFUSE = "refuse"      # say no to the sender
    HOLD = "hold"          # FTP: let the client in, leave its files where they are
    DISABLED = "disabled"  # integration is off: the account takes nothing on any channel


class Reason(StrEnum):
    DISABLED = "disabled"
    MODE = "mode"                      # データ連動方式 is another channel's
    SENDER = "sender"                  # From: not among the 送信元メールアドレス
    UNREADABLE_SENDER = "unreadable_sender"  # From: missing or not one address
    NETWORK = "network"                # the peer is outside the 送信元サーバー
    BOUNCE = "bounce"                  # envelope sender <> (a bounce)
    ENVELOPE = "envelope"              # envelope sender not among the 送信元メールアドレス
    UNAUTHENTICATED = "unauthenticated"  # 送信元の認証 required and DKIM/SPF did not pass
    STOPPED = "stopped"                # データ連動ステータス is 連動稼働停止


@dataclass(frozen=True)
class Standing:
    """What admission reads of an account: its switch and the settings that decide."""

    enabled: bool
    mode: str
    status: str
    senders: frozenset[str] = frozenset()  # 送信元メールアドレス, lower case
    networks: tuple[str, ...] = ()  # 送信元サーバー (addresses or CIDRs); empty = any
    sender_auth: str = SenderAuth.NONE  # 送信元の認証

    @classmethod
    def of(cls, account: Account, settings: IntegrationSettings | None) -> Standing:
        """The standing of `account` with its settings row (None: no row, which admits nothing)."""
        if settings is None:
            return cls(enabled=False, mode="", status="")
        return cls(enabled=bool(account.integration_enabled), mode=settings.mode, status=settings.status,
                   senders=frozenset(s.strip().lower() for s in (settings.senders or []) if s),
                   networks=tuple(settings.sender_networks or ()),
                   sender_auth=settings.sender_auth or SenderAuth.NONE)

    def allows_peer(self, peer: str) -> bool:
        """True when no 送信元サーバー is set or `peer` (an IP address) is inside one of them."""
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in ipaddress.ip_network(n, strict=False) for n in self.networks
                   if ipaddress.ip_network(n, strict=False).version == address.version)


@dataclass(frozen=True)
class Admission:
    """The answer: what happens to a file of this channel, and why (Japanese, empty for ACCEPT)."""

    outcome: Outcome
    reason: Reason | None = None
    text: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPT


ACCEPTED = Admission(Outcome.ACCEPT)

# The outcome and text of each reason per channel: the only place they are written.
_RULES: dict[Channel, dict[Reason, tuple[Outcome, str]]] = {
    Channel.MAIL: {
        Reason.DISABLED: (Outcome.DISABLED, "このアカウントでは外部連携設定が有効になっていません。"),
        Reason.MODE: (Outcome.DISCARD, "データ連動方式が「{mode}」のため、メールを破棄しました"),
        Reason.SENDER: (Outcome.REFUSE, "送信元メールアドレスに登録されていない差出人のため受信を拒否しました: {sender}"),
        Reason.UNREADABLE_SENDER: (Outcome.REFUSE, "差出人を確認できないため受信を拒否しました"),
        Reason.NETWORK: (Outcome.REFUSE, "送信元サーバーに登録されていないサーバーからのメールのため受信を拒否しました: {peer}"),
        Reason.BOUNCE: (Outcome.REFUSE, "エンベロープの送信者が空(エラー通知メール)のため受信を拒否しました"),
        Reason.ENVELOPE: (Outcome.REFUSE,
                          "エンベロープの送信者が送信元メールアドレスに登録されていないため受信を拒否しました: {envelope}"),
        Reason.UNAUTHENTICATED: (Outcome.REFUSE, ("送信元の認証({required})に合格しなかったため、メールを取り込みませんでした"
                                 "(DKIM: {dkim}、SPF: {spf})。送信元のメールサーバーでDKIM署名またはSPFを設定してください。")),
        Reason.STOPPED: (Outcome.DISCARD, "データ連動ステータスが連動稼働停止のため、メールを破棄しました"),
    },
    Channel.FTP: {
        Reason.DISABLED: (Outcome.DISABLED, "このアカウントでは外部連携設定が有効になっていません。"),
        Reason.MODE: (Outcome.REFUSE, "データ連動方式がFTP連動ではないため、チェックしません。"),
        Reason.STOPPED: (Outcome.HOLD, "データ連動ステータスが連動稼働停止のため、ファイルはそのまま残しています。"),
    },
    Channel.API: {
        Reason.DISABLED: (Outcome.DISABLED, "このアカウントでは外部連携が有効になっていません。"),
        Reason.MODE: (Outcome.REFUSE, "データ連動方式が「API連動」ではありません。"),
        Reason.STOPPED: (Outcome.REFUSE, "データ連動ステータスが「連動稼働停止」です。"),
    },
}

_PENDING = object()  # the sender is not known yet (SMTP RCPT, before DATA)


def admit(account: Account | Standing, channel: Channel | str, *, sender: str | None | object = _PENDING,
          envelope: str | None | object = _PENDING, peer: str | None = None,
          settings: IntegrationSettings | None = None) -> Admission:
    """Decide whether `account` may receive a file on `channel` now (see the module docstring).

    `account` is an Account (its settings are read unless `settings` is given; needs an app
    context) or a Standing snapshot. For mail: `sender` is the From: address (None: unreadable),
    `envelope` the SMTP envelope sender ("" or None: a bounce), `peer` the client's IP address;
    each is checked only when given. Other channels ignore them.
    """
    channel = Channel(channel)
    standing = account if isinstance(account, Standing) else Standing.of(account, settings or _settings(account))
    reason = _reason(standing, channel, sender, envelope, peer)
    if reason is None:
        return ACCEPTED
    outcome, text = _RULES[channel][reason]
    mode = _mode_label(standing.mode) if reason is Reason.MODE else ""
    return Admission(outcome, reason, text.format(sender=sender, envelope=envelope, peer=peer, mode=mode))


def _mode_label(mode: str) -> str:
    """The データ連動方式 as the settings tab names it (the discard note says which one took the mail's place)."""
    from .integration_fields import MODES

    return MODES.get(mode, mode)


def authenticated(standing: Standing, auth: Authentication, sender: str) -> Admission:
    """Apply the account's 送信元の認証 to what DKIM and SPF said of a mail from `sender` (its From:).

    A DKIM pass counts only for a signature of the From: domain (or a parent of it); an SPF pass
    is for the envelope sender's domain, which admission already required to be an allowed sender.
    """
    from .integration_fields import SENDER_AUTHS
    from .senderauth import aligned

    required = standing.sender_auth or SenderAuth.NONE
    if required == SenderAuth.NONE:
        return ACCEPTED
    dkim_pass = auth.dkim == "pass" and aligned(auth.dkim_domain, sender)
    spf_pass = auth.spf == "pass"
    passed = {SenderAuth.DKIM: dkim_pass, SenderAuth.SPF: spf_pass}.get(required, dkim_pass or spf_pass)
    if passed:
        return ACCEPTED
    outcome, text = _RULES[Channel.MAIL][Reason.UNAUTHENTICATED]
    dkim_shown = auth.dkim if auth.dkim != "pass" or dkim_pass else f"pass (d={auth.dkim_domain}、差出人と不一致)"
    return Admission(outcome, Reason.UNAUTHENTICATED,
                     text.format(required=SENDER_AUTHS.get(required, required), dkim=dkim_shown, spf=auth.spf))


def _reason(standing: Standing, channel: Channel, sender: str | None | object, envelope: str | None | object,
            peer: str | None) -> Reason | None:
    if not standing.enabled:
        return Reason.DISABLED
    if standing.mode != channel:
        return Reason.MODE
    if channel is Channel.MAIL:
        if peer is not None and not standing.allows_peer(peer):
            return Reason.NETWORK
        if envelope is not _PENDING:
            if not envelope:
                return Reason.BOUNCE
            if str(envelope).strip().lower() not in standing.senders:
                return Reason.ENVELOPE
        if sender is not _PENDING:
            if not sender:
                return Reason.UNREADABLE_SENDER
            if str(sender).strip().lower() not in standing.senders:
                return Reason.SENDER
    if standing.status != LinkStatus.ACTIVE:
        return Reason.STOPPED
    return None


def _settings(account: Account) -> IntegrationSettings | None:
    return account.settings
