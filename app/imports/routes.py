"""取込履歴, a page per import (errors, download, 再取込), 手動取込 and 送信メール."""
from __future__ import annotations

import datetime as dt
import unicodedata
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import queryargs
from ..auth.access import admin_required, owned_or_404
from ..enums import Channel
from ..errors import ImportRejected, RenkeiError, RowError
from ..extensions import db
from ..importer.filename import base_name, period_label
from ..models import Import, ImportErrorRecord, OutboxMail
from ..services import archives, files, ingest, overdue, samplefile
from ..services.preview import PREVIEW_ROWS
from ..services.senderauth import RESULT_LABELS
from . import bp
from .forms import HistoryFilterForm, ReimportForm, UploadForm

PER_PAGE = 50
# Errors per page of an import's page (at most app.errors.MAX_ERRORS_PER_FILE are stored per import).
ERRORS_PER_PAGE = 100
# While the worker has not finished, the page reloads itself (a meta refresh, allowed by the CSP).
REFRESH_SECONDS = 2
OUTBOX_KIND_LABELS = {"error": "エラー報告", "success": "正常更新報告", "discard": "破棄のお知らせ",
                      "overdue": "データ未着", "arrived": "データ到着"}
# Python codec names as the user knows them (Excel says "Shift_JIS").
ENCODING_LABELS = {
    "cp932": "Shift_JIS(cp932)",
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8(BOM付き)",
    "euc-jp": "EUC-JP",
    "iso2022-jp": "ISO-2022-JP",
    "utf-16-le": "UTF-16LE(BOM付き)",
    "utf-16-be": "UTF-16BE(BOM付き)",
}


def encoding_label(codec: str | None) -> str:
    """Return the user-facing name of a codec ("" when unknown)."""
    if not codec:
        return ""
    return ENCODING_LABELS.get(codec.lower().replace("_", "-"), codec)


@bp.route("/imports")
@login_required
def history():
    form = HistoryFilterForm(request.args)
    query = db.select(Import).where(Import.account_id == current_user.account_id)
    filtered = False
    if form.validate():
        query, filtered = _apply_filters(query, form)
    query = query.order_by(Import.received_at.desc(), Import.id.desc())
    page = queryargs.paginate(query, PER_PAGE)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    # データ未着 entries are periods, not received files: their own list above the first page.
    missing = overdue.recent_periods(current_user.account_id) if page.page == 1 and not filtered else []
    return render_template("imports/history.html", form=form, page=page, args=args, filtered=filtered,
                           missing=missing, period_text=overdue.period_text)


def _apply_filters(query, form: HistoryFilterForm):
    """Narrow the history query by the filter form; return the query and whether any filter applied."""
    filtered = False
    if form.status.data:
        query = query.where(Import.status == form.status.data)
        filtered = True
    if form.channel.data:
        query = query.where(Import.channel == form.channel.data)
        filtered = True
    name = queryargs.search_text(form.filename.data)
    if name:
        # autoescape: a user typing % or _ means those characters, not SQL wildcards.
        query = query.where(Import.filename.contains(name, autoescape=True))
        filtered = True
    # Dates are the user's local calendar days; the database holds naive UTC. Clamped one day
    # inside the date range, so a day's start in any time zone and "the day after" are dates.
    if form.date_from.data:
        query = query.where(Import.received_at >= _local_day_start_utc(queryargs.clamp_day(form.date_from.data)))
        filtered = True
    if form.date_to.data:
        following = queryargs.clamp_day(form.date_to.data) + dt.timedelta(days=1)
        query = query.where(Import.received_at < _local_day_start_utc(following))
        filtered = True
    return query, filtered


def _local_day_start_utc(day: dt.date) -> dt.datetime:
    """Return the naive UTC instant at which `day` begins in the app's time zone."""
    tz = ZoneInfo(current_app.config["TIMEZONE"])
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    return start.astimezone(dt.timezone.utc).replace(tzinfo=None)


@bp.route("/imports/<int:import_id>")
@login_required
def history_detail(import_id: int):
    record = owned_or_404(Import, import_id)
    has_content = files.exists(record.id)
    # 置換した取込 (the import whose data this one replaced) and 置換済 (the one that replaced this one's).
    replaced = db.session.get(Import, record.replaced_import_id) if record.replaced_import_id else None
    replaced_by = db.session.get(Import, record.replaced_by_id) if record.replaced_by_id else None
    pending = record.status in (Import.QUEUED, Import.RUNNING)
    # The archive it was unpacked from, or the files unpacked from it (services/archives.py).
    archive = db.session.get(Import, record.archive_id) if record.archive_id else None
    unpacked = archives.entries(record.id) if record.status == Import.UNPACKED else []
    pending = pending or any(entry.status in (Import.QUEUED, Import.RUNNING) for entry in unpacked)
    errors = queryargs.paginate(
        db.select(ImportErrorRecord).where(ImportErrorRecord.import_id == record.id).order_by(ImportErrorRecord.id),
        ERRORS_PER_PAGE,
    )
    return render_template(
        "imports/detail.html",
        errors=errors,
        record=record,
        period=period_label(record.period_kind, record.period_date),
        encoding=encoding_label(record.encoding),
        has_content=has_content,
        file_gone=files.gone_text() if record.file_deleted_at is not None and not has_content else None,
        replaced=replaced,
        replaced_by=replaced_by,
        archive=archive,
        unpacked=unpacked,
        pending=pending,
        refresh_seconds=REFRESH_SECONDS,
        form=ReimportForm(),
        auth_labels=RESULT_LABELS,
    )


@bp.route("/imports/<int:import_id>/download")
@login_required
def download(import_id: int):
    record = owned_or_404(Import, import_id)
    pieces = files.stream(record.id)
    if pieces is None:
        if record.file_deleted_at is not None:
            return render_template("error.html", code=404, message=f"{files.gone_text()}。"), 404
        # A refusal record (e.g. a mail without a usable attachment) keeps no bytes.
        abort(404)
    # Streamed one stored piece at a time. The size is sent, so a download cut short (the
    # original deleted meanwhile: FileGone) is seen as incomplete, never as a shorter file.
    # octet-stream, not text/csv: the bytes may be cp932 and must reach the user unchanged.
    response = Response(pieces, mimetype="application/octet-stream")
    response.content_length = record.size
    response.headers.set("Content-Disposition", "attachment", **_download_names(base_name(record.filename) or "import.csv"))
    response.headers["Cache-Control"] = "no-cache"
    return response


def _download_names(name: str) -> dict[str, str]:
    """Content-Disposition names: filename*=UTF-8''… (RFC 5987) for Japanese names plus an ASCII fallback."""
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
        return {"filename": fallback or "import.csv", "filename*": f"UTF-8''{quote(name, safe='!#$&+^`|~')}"}
    return {"filename": name}


# 見本ファイル: one URL per format (no URL argument: nothing of another account can be named).
@bp.route("/imports/sample.csv")
@login_required
def sample_csv():
    return _sample("csv")


@bp.route("/imports/sample-utf8.csv")
@login_required
def sample_csv_utf8():
    return _sample("csv-utf8")


@bp.route("/imports/sample.xlsx")
@login_required
def sample_xlsx():
    return _sample("xlsx")


def _sample(fmt: str):
    """見本ファイル of the signed-in user's account: csv (cp932), csv-utf8 (with a BOM) or xlsx; any role."""
    name, fallback, content_type = samplefile.FORMATS[fmt]
    try:
        data = samplefile.build(current_user.account_id, fmt)
    except RenkeiError as error:
        return render_template("error.html", code=422, message=error.message), 422
    response = Response(data, content_type=content_type)
    response.headers.set("Content-Disposition", "attachment", filename=fallback,
                         **{"filename*": f"UTF-8''{quote(name, safe='')}"})
    # Today's header: never a cached one after the columns changed.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/imports/<int:import_id>/reimport", methods=["POST"])
@admin_required
def reimport(import_id: int):
    record = owned_or_404(Import, import_id)
    form = ReimportForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        new = ingest.reimport(current_user.account_id, record.id, current_user.email)
    except RenkeiError as error:
        flash(error.message, "error")
        return redirect(url_for("imports.history_detail", import_id=record.id))
    flash(f"「{new.filename}」を再取込の待ち行列に入れました。取込結果はこのページに表示されます。", "success")
    return redirect(url_for("imports.history_detail", import_id=new.id))


@bp.route("/upload", methods=["GET", "POST"])
@admin_required
def upload():
    form = UploadForm()
    outcome = None
    limit = current_app.config["MAX_UPLOAD_BYTES"]
    if form.validate_on_submit():
        storage = form.file.data
        filename = storage.filename or ""
        # Read one byte past the limit: enough to know it is too big without reading it all.
        data = storage.stream.read(limit + 1)
        if len(data) > limit:
            form.file.errors.append(f"ファイルが大きすぎます(上限 {_size_label(limit)})。")
        elif form.dry_run.data:
            outcome = _dry_run(filename, data)
        else:
            try:
                record = ingest.receive(
                    current_user.account_id, filename, data, channel=Channel.WEB, sender=current_user.email
                )
            except ImportRejected as error:
                outcome = {"filename": filename, "errors": error.errors, "stored": False}
            except RenkeiError as error:
                form.file.errors.append(error.message)
            else:
                flash("受け付けました。取込結果はこのページに表示されます。", "success")
                return redirect(url_for("imports.history_detail", import_id=record.id))
    return render_template("imports/upload.html", form=form, outcome=outcome, limit_label=_size_label(limit),
                           sample_header=samplefile.header(current_user.account_id), preview_rows=PREVIEW_ROWS)


def _dry_run(filename: str, data: bytes) -> dict:
    """Check a file without storing anything; return what the page shows."""
    try:
        result = ingest.dry_run(current_user.account_id, filename, data)
    except ImportRejected as error:
        return {"filename": filename, "errors": list(error.errors), "dry_run": True}
    except RenkeiError as error:
        return {"filename": filename, "errors": [RowError(message=error.message)], "dry_run": True}
    period = result.period
    return {
        "filename": filename,
        "dry_run": True,
        "errors": list(result.errors),
        "rows": result.rows,
        "encoding": encoding_label(result.encoding),
        "period": getattr(period, "label", period) if period is not None else "",
        "preview": result.preview,
        # An archive: each of its files with its own preview (its errors are in "errors", named by file).
        "parts": [{"name": name, "rows": part.rows, "preview": part.preview} for name, part in result.parts],
    }


def _size_label(size: int) -> str:
    """Return a byte count as the user reads it (25 MB, 512 KB)."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    if size >= 1024:
        return f"{size / 1024:g} KB"
    return f"{size} バイト"


@bp.route("/outbox")
@login_required
def outbox():
    query = (
        db.select(OutboxMail)
        .where(OutboxMail.account_id == current_user.account_id)
        .order_by(OutboxMail.created_at.desc(), OutboxMail.id.desc())
    )
    page = queryargs.paginate(query, PER_PAGE)
    return render_template(
        "imports/outbox.html",
        page=page,
        kind_labels=OUTBOX_KIND_LABELS,
        relay_configured=bool(current_app.config.get("SMTP_RELAY")),
    )


@bp.route("/outbox/<int:mail_id>")
@login_required
def outbox_detail(mail_id: int):
    mail = owned_or_404(OutboxMail, mail_id)
    return render_template(
        "imports/outbox_detail.html",
        mail=mail,
        kind_labels=OUTBOX_KIND_LABELS,
        relay_configured=bool(current_app.config.get("SMTP_RELAY")),
    )
