"""Report mails after an attempted import (docs/spec.md section 4): Japanese plain text, written to the outbox.

The caller commits: the report goes into the same transaction as the import's final status,
so a crash can neither lose a report nor send one for an import that did not end.

An error mail lists the errors stored for the import (at most MAX_ERRORS_IN_MAIL, the same
first errors the import's page shows) and says how many more were counted. Its advice fits
the error: a wrong file name asks for a new name, a mail without a CSV asks for a CSV
attachment, only errors inside a file ask to resend under the same name. Every report of a
mail names each attachment that was not imported, and says what to do with an Excel file.
"""
from __future__ import annotations

import datetime as dt
import logging

from flask import current_app
from sqlalchemy import func, select

from .. import config
from ..errors import MAX_ERRORS_PER_FILE, ImportRejected, RowError, error_total
from ..extensions import db
from ..enums import Channel
from ..formats import shown_number, shown_time
from ..importer.filename import (FILENAME_MESSAGE, Period, is_archive, is_workbook, kind_label, parse_filename,
                                 period_label)
from ..importer.header import KEY_HEADERS
from ..importer.layout import NO_DATA_MESSAGE, UNKNOWN_MEMBER
from ..models import Account, GraphColumn, Import, IntegrationSettings, OutboxMail, utcnow
from ..models_results import ImportTotal
from . import outbox

log = logging.getLogger(__name__)

# The mail lists what is stored for the import: the first MAX_ERRORS_PER_FILE errors.
MAX_ERRORS_IN_MAIL = MAX_ERRORS_PER_FILE
# How the SMTP channel writes the ignored attachments into the import's note today
# (servers/spooldrain.py _ignored_note): this prefix, then the names joined by ", ".
# Spreadsheet files that are not read (the accepted ones are filename.WORKBOOK_ENDINGS).
SPREADSHEET_SUFFIXES = (".xlsb", ".numbers")


def _local(value: dt.datetime | None) -> str:
    return shown_time(value, config.timezone(current_app))


def _link(imp: Import) -> str:
    base = current_app.config.get("PUBLIC_URL", "").rstrip("/")
    return f"{base}/imports/{imp.id}"


def _sample_link(imp: Import) -> str:
    """The 見本ファイル download (app/imports/routes.py sample): .xlsx for a workbook, else the Shift_JIS CSV."""
    base = current_app.config.get("PUBLIC_URL", "").rstrip("/")
    return f"{base}/imports/sample.{'xlsx' if is_workbook(imp.filename) else 'csv'}"


def _context(imp: Import) -> tuple[Account, IntegrationSettings | None]:
    account = db.session.get(Account, imp.account_id)
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == imp.account_id))
    return account, settings


def _header_lines(account: Account, imp: Import) -> list[str]:
    zone = config.get(current_app, "TIMEZONE")
    return [
        f"アカウント: {account.name} ({account.slug})",
        f"受付経路: {imp.channel_label}",
        f"ファイル名: {imp.filename}",
        f"送信者: {imp.sender or '-'}",
        f"受信日時: {_local(imp.received_at)} ({zone})",
        f"取込番号: #{imp.id}",
    ]


def ignored_attachments(imp: Import) -> list[str]:
    """The names of the attachments of the import's mail that were not imported (not CSV files)."""
    return [str(name) for name in imp.ignored_attachments or []]


def _ignored_lines(names: list[str]) -> list[str]:
    """One line per ignored attachment, with the advice that fits it."""
    lines = []
    for name in names:
        if name.lower().endswith(SPREADSHEET_SUFFIXES):
            lines.append(f"・「{name}」: 読み取れない形式の表計算ファイルのため取り込んでいません。"
                         "「名前を付けて保存」で「Excel ブック(*.xlsx)」または「CSV(コンマ区切り)」を選んで保存し、"
                         "そのファイル(例: 20180516.xlsx)を添付して送ってください。")
        else:
            lines.append(f"・「{name}」: 取り込める形式(CSV・Excel・ODS)のファイルではないため取り込んでいません。")
    return lines


def ignored_headers_lines(imp: Import) -> list[str]:
    """The section naming the columns the import skipped (見出しにない列: 無視する), or nothing."""
    names = [str(name) for name in imp.ignored_headers or []]
    if not names:
        return []
    return ["", "■ 無視した列(見出しにない列)",
            "次の見出しの列は、グラフ列・メンバー識別ID・備考のどれでもないため、値を読まずに取り込みました"
            "(外部連携設定の「見出しにない列: 無視する」)。グラフに出したい列なら、グラフ設定で別名を登録してください。",
            *(f"・{name}" for name in names)]


def _name_is_wrong(filename: str) -> bool:
    try:
        parse_filename(filename)
    except ImportRejected:
        return True
    return False


# The kinds of error inside a file, in the order their advice is given (see error_kinds).
ENCODING, HEADER, MEMBER, VALUES = "encoding", "header", "member", "values"
ENCODING_LABELS = {"cp932": "Shift_JIS(cp932)", "utf-8": "UTF-8"}  # integration_fields.ENCODINGS, pinned ones


def error_kinds(imp: Import, errors: list[RowError]) -> list[str]:
    """The kinds of the errors of a file whose name could be read, each once, in advice order.

    Errors of the whole file that name it (a value, no line: the file name's, a file refused
    inside an archive) and the system error have their own advice. A CSV whose text could not
    be decoded has no encoding stored (runner.finish_failed): its errors are the encoding's.
    Otherwise an error naming a 見出し without a value is the header's, one starting with
    layout.UNKNOWN_MEMBER a member's, and one on a data row a value's.
    """
    from .runner import SYSTEM_ERROR_MESSAGE

    inside = [e for e in errors if e.message != SYSTEM_ERROR_MESSAGE and (e.line is not None or e.value is None)]
    if not inside:
        return []
    if not is_workbook(imp.filename) and imp.encoding is None:
        return [ENCODING]
    kinds = set()
    for error in inside:
        if error.message.startswith(UNKNOWN_MEMBER):
            kinds.add(MEMBER)
        elif "見出し" in error.message and error.value is None and NO_DATA_MESSAGE not in error.message:
            kinds.add(HEADER)
        elif error.line is not None:
            kinds.add(VALUES)
    return [kind for kind in (ENCODING, HEADER, MEMBER, VALUES) if kind in kinds]


def _kind_advice(kinds: list[str], imp: Import, settings: IntegrationSettings | None) -> list[str]:
    """One line of advice per kind of error found, and none for a kind that did not occur."""
    key = KEY_HEADERS.get(settings.member_key if settings else "no", "No.")
    header_row = "見出し行" if is_workbook(imp.filename) else "1行目"
    pinned = ENCODING_LABELS.get(settings.encoding or "") if settings else None
    advice = {
        ENCODING: ("・文字コード: " + (f"外部連携設定で文字コードが「{pinned}」に決められています。その文字コードで"
                                      if pinned else "ファイルを Shift_JIS(cp932) または UTF-8 で")
                   + "保存し直してください(Excel では「名前を付けて保存」で「CSV(コンマ区切り)」"
                     "または「CSV UTF-8(コンマ区切り)」を選びます)。"),
        HEADER: (f"・見出し: {header_row}の見出しは、{key}・グラフ設定の列名(または登録した別名)・備考にしてください。"
                 "下の見本ファイルの見出しをそのまま使うと確実です。"),
        MEMBER: (f"・メンバー: メンバー設定にない(または無効な){key}の行があります。{key}を直すか、"
                 "管理者にメンバー設定への登録(または有効化)を依頼してください。"),
        VALUES: "・値: エラー一覧の行と列の値を直してください(グラフ列には数値だけを入れます)。",
    }
    return [advice[kind] for kind in kinds]


def _failure_advice(imp: Import, ignored: list[str], kinds: list[str],
                    settings: IntegrationSettings | None) -> list[str]:
    """What the sender should do, by the kind of error (no file, file name, encoding, header, member, values)."""
    if imp.sha256 is None:
        # Nothing was received that could be imported (no CSV attached, an unreadable or cut mail).
        lines = ["ファイルは取り込んでいません。以前に取り込んだデータはそのまま残っています。"]
        if ignored:
            lines.append("添付ファイルはありましたが、取り込める形式(CSV・Excel・ODS)のファイルがありませんでした。")
        lines.append("下記のエラーの内容に従って、CSVファイルまたはExcelファイルを添付して送り直してください。")
        return lines
    if is_archive(imp.filename):
        # The archive itself was refused (limits, password, broken): none of its files was read.
        return ["アーカイブ内のファイルは1つも取り込んでいません。以前に取り込んだデータはそのまま残っています。",
                "下記のエラーの内容に従って、アーカイブを作り直して送り直してください。"]
    if _name_is_wrong(imp.filename):
        return [
            "ファイルの内容は1行も保存されていません。以前に取り込んだデータはそのまま残っています。",
            f"・ファイル名: ファイル名「{imp.filename}」からは期間が分かりません。{FILENAME_MESSAGE}",
            *_kind_advice(kinds, imp, settings),
            "ファイル名を直して" + ("(下のエラーも直して)" if kinds else "") + "送り直してください。",
        ]
    return [
        "ファイルの内容は1行も保存されていません。同じファイル名で以前に取り込んだデータはそのまま残っています。",
        *_kind_advice(kinds, imp, settings),
        "エラーを直して、同じファイル名で送り直してください。",
    ]


def failure_report(imp: Import, errors: list[RowError]) -> OutboxMail | None:
    """Queue the error report to every エラー報告メールアドレス (no commit)."""
    account, settings = _context(imp)
    recipients = list(settings.error_to) if settings and settings.error_to else []
    if not recipients:
        log.warning("import #%s failed but account=%s has no error report address", imp.id, account.slug)
        return None
    total = max(error_total(errors), imp.error_count or 0)
    ignored = ignored_attachments(imp)
    intro = ("ファイルを取り込めませんでした。" if imp.sha256 is None or is_archive(imp.filename)
             else f"{kind_label(imp.filename)}の取込でエラーが見つかったため、このファイルは取り込みませんでした。")
    lines = [
        f"{account.name} 様",
        "",
        intro,
        *_failure_advice(imp, ignored, error_kinds(imp, errors), settings),
        "",
        *_header_lines(account, imp),
        f"エラー件数: {total:,}件",
        "",
        "■ エラー一覧(行番号・列はシートの表示どおりです)" if is_workbook(imp.filename)
        else "■ エラー一覧(行番号は見出し行を1行目として数えています)",
    ]
    shown = errors[:MAX_ERRORS_IN_MAIL]
    lines.extend(error.as_text() for error in shown)
    if total > len(shown):
        lines.append(
            f"…ほか {total - len(shown):,}件のエラーがあります(記録しているのは最初の{len(shown):,}件です)。"
            "上のエラーを直してから、もう一度送ってください。"
        )
    if ignored:
        lines += ["", "■ 取り込まなかった添付ファイル", *_ignored_lines(ignored)]
    lines += _ftp_lines(imp, ERROR_FOLDER)
    page = "エラーと元のファイル" if imp.sha256 is not None else "エラー"
    lines += ["", f"■ 取込履歴({page})", _link(imp),
              "", "■ 見本ファイル(今の設定どおりの見出しと例の行。ログインしてダウンロードします)", _sample_link(imp),
              "", "-- ", "Renkei 外部連携"]
    subject = f"【取込エラー】{account.name} {imp.filename}({total:,}件のエラー)"
    return outbox.enqueue(account.id, imp.id, "error", recipients, subject, "\n".join(lines) + "\n",
                          not_before=_held_until(imp))


def import_totals(import_id: int, column_ids: list[int]) -> dict[int, float]:
    """Sum each graph column over one import's results: its members' sums in import_totals (services/totals.py)."""
    if not column_ids:
        return {}
    return dict(db.session.execute(
        select(ImportTotal.column_id, func.sum(ImportTotal.total))
        .where(ImportTotal.import_id == import_id, ImportTotal.column_id.in_(column_ids))
        .group_by(ImportTotal.column_id)
    ).all())


def success_report(imp: Import, period: Period | None = None) -> OutboxMail | None:
    """Queue the success report to every 正常更新報告メールアドレス, if there is any (no commit)."""
    account, settings = _context(imp)
    recipients = list(settings.success_to) if settings and settings.success_to else []
    if not recipients:
        return None
    db.session.flush()
    columns = db.session.scalars(
        select(GraphColumn).where(GraphColumn.account_id == imp.account_id)
        .order_by(GraphColumn.position, GraphColumn.id)
    ).all()
    totals = import_totals(imp.id, [column.id for column in columns])
    shown_period = period.label if period is not None else (period_label(imp.period_kind, imp.period_date) or "-")
    kind = "日次" if imp.period_kind == "day" else "月次"
    lines = [
        f"{account.name} 様",
        "",
        f"{kind_label(imp.filename)}を取り込みました。",
        "",
        *_header_lines(account, imp),
        f"期間: {shown_period}({kind})",
        f"取込行数: {imp.row_count:,}行",
        "",
        "■ 項目別の合計",
    ]
    for column in columns:
        total = totals.get(column.id)
        shown = shown_number(total, column.unit or "") if total is not None else "(値なし)"
        lines.append(f"{column.name}: {shown}")
    lines.append("")
    if imp.replaced_import_id:
        lines.append(f"同じファイル名の以前の取込 #{imp.replaced_import_id} のデータを削除し、今回のデータに置き換えました。")
    else:
        lines.append("同じファイル名の以前の取込はありません(新しく追加しました)。")
    lines += ignored_headers_lines(imp)
    ignored = ignored_attachments(imp)
    if ignored:
        lines += ["", "■ 取り込まなかった添付ファイル", *_ignored_lines(ignored)]
    lines += _ftp_lines(imp, PROCESSED_FOLDER)
    lines += ["", "■ 取込履歴", _link(imp), "", "-- ", "Renkei 外部連携"]
    subject = f"【取込完了】{account.name} {imp.filename}({imp.row_count:,}行)"
    return outbox.enqueue(account.id, imp.id, "success", recipients, subject, "\n".join(lines) + "\n",
                          not_before=_held_until(imp))


# ---------------------------------------------------------------------------------------
# FTP: the report says where the file was moved (services/ftpcheck.py moves it after the import ends)

PROCESSED_FOLDER, ERROR_FOLDER = "processed", "error"  # ftpfiles.PROCESSED / ERROR
FTP_SECTION = "■ FTPのファイル"
# How long a report of an FTP file waits for the check to move the file (beyond the check's own wait).
FTP_HOLD_MARGIN_SECONDS = 60


def _awaits_move(imp: Import) -> bool:
    """An FTP file that a check moves once its import ended (a file of an archive moves with its archive)."""
    return imp.channel == Channel.FTP and imp.archive_id is None


def _ftp_lines(imp: Import, folder: str) -> list[str]:
    """Where the check moves the file; `filed` replaces the second line with the name it got."""
    if not _awaits_move(imp):
        return []
    return ["", FTP_SECTION, f"「{imp.filename}」は、取込が終わったあとのチェックで {folder}/ フォルダに"
            f"「{imp.filename.rsplit('.', 1)[0]}_移した日時」の名前で移します。"]


def _held_until(imp: Import) -> dt.datetime | None:
    """An FTP report waits for its file's move (at most the check's wait and a margin), so it can say where."""
    if not _awaits_move(imp):
        return None
    wait = float(config.get(current_app, "IMPORT_WAIT_SECONDS"))
    return utcnow() + dt.timedelta(seconds=wait + FTP_HOLD_MARGIN_SECONDS)


def filed(import_id: int, name: str, moved_to: str) -> int:
    """Write where the check moved an FTP file into its waiting report and send it now; return how many changed.

    A report already sent (the check moved the file after the hold) stays as it was; it said the folder.
    """
    changed = 0
    for mail in db.session.scalars(select(OutboxMail).where(
            OutboxMail.import_id == import_id, OutboxMail.status == OutboxMail.PENDING,
            OutboxMail.claimed_at.is_(None), OutboxMail.attempts == 0, OutboxMail.kind.in_(("error", "success")))):
        lines = mail.body.split("\n")
        if FTP_SECTION not in lines:
            continue
        lines[lines.index(FTP_SECTION) + 1] = f"「{name}」は {moved_to} に移しました。"
        mail.body = "\n".join(lines)
        mail.next_attempt_at = utcnow()
        changed += 1
    db.session.commit()
    return changed
