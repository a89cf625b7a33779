"""Members (メンバー設定): add, edit, deactivate, bulk load from CSV, and the key lookup the importer uses."""
from __future__ import annotations

import unicodedata

from ..errors import ImportRejected, Invalid, NotFound, RowError
from ..extensions import db
from ..importer.addresses import InvalidAddress, is_address, normalize_address
from ..models import Member

MEMBER_KEYS = ("no", "employee_id")

# Deliberately permissive: one @, no spaces, a dot in the domain. Report addresses are
# checked by the mail relay anyway; this only catches typing mistakes.

FIELD_LABELS = {
    "no": "No.",
    "employee_id": "社員ID",
    "name": "氏名",
    "department": "部署",
    "email": "メールアドレス",
}


def list_members(account_id: int) -> list[Member]:
    """Return every member of the account (active or not), sorted by No."""
    return list(db.session.scalars(db.select(Member).where(Member.account_id == account_id).order_by(Member.no)))


def count_members(account_id: int) -> int:
    """Return how many members (active or not) the account has."""
    return db.session.scalar(db.select(db.func.count(Member.id)).where(Member.account_id == account_id)) or 0


def get_member(account_id: int, member_id: int) -> Member:
    """Return the account's member or raise NotFound (never another account's)."""
    member = db.session.get(Member, member_id)
    if member is None or member.account_id != account_id:
        raise NotFound("メンバーが見つかりません。")
    return member


def member_lookup(account_id: int, member_key: str) -> dict[str, int]:
    """Map the text of column 1 of a results CSV to a member id (active members only).

    For "no" the key is str(no) (e.g. "7"); for "employee_id" it is the stored 社員ID
    exactly, leading zeros included. Members without a 社員ID are absent from that map.
    """
    if member_key not in MEMBER_KEYS:
        raise ValueError(f"unknown member key: {member_key!r}")
    rows = db.session.execute(
        db.select(Member.id, Member.no, Member.employee_id).where(
            Member.account_id == account_id, Member.active.is_(True)
        )
    )
    if member_key == "no":
        return {str(no): member_id for member_id, no, _ in rows}
    return {employee_id: member_id for member_id, _, employee_id in rows if employee_id}


def create_member(
    account_id: int,
    no: int | str | None,
    employee_id: str | None,
    name: str | None,
    department: str | None = None,
    email: str | None = None,
) -> Member:
    """Add a member to the account after validating every field; raise Invalid listing each problem."""
    values = _clean(account_id, None, no, employee_id, name, department, email)
    member = Member(account_id=account_id, active=True, **values)
    db.session.add(member)
    db.session.commit()
    return member


def update_member(
    account_id: int,
    member_id: int,
    no: int | str | None,
    employee_id: str | None,
    name: str | None,
    department: str | None = None,
    email: str | None = None,
) -> Member:
    """Change a member's fields after the same validation as create_member."""
    member = get_member(account_id, member_id)
    values = _clean(account_id, member.id, no, employee_id, name, department, email)
    for key, value in values.items():
        setattr(member, key, value)
    db.session.commit()
    return member


def set_active(account_id: int, member_id: int, active: bool) -> Member:
    """Deactivate (無効) or reactivate (有効) a member; inactive members match no CSV row."""
    member = get_member(account_id, member_id)
    member.active = bool(active)
    db.session.commit()
    return member


def import_members(account_id: int, data: bytes) -> tuple[int, int]:
    """Upsert members by No. from a `No.,社員ID,氏名,部署,メールアドレス` CSV; return (inserted, updated).

    All or nothing: any error raises ImportRejected with every error and stores nothing.
    The active flag of existing members is left as it is.
    """
    # Imported here so that the rest of the service works while app.importer is being written.
    from ..importer.encoding import decode
    from ..importer.members import parse_members

    text, _encoding = decode(data)
    rows, errors = parse_members(text)
    errors = list(errors)
    if not rows and not errors:
        errors.append(RowError(message="データ行がありません。2行目以降にメンバーを記入してください。"))

    existing = {m.no: m for m in list_members(account_id)}
    errors.extend(_check_rows(rows, existing))
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: (e.line or 0)))

    inserted = updated = 0
    try:
        # Clear the 社員ID of members that change it first, so two members can swap
        # their IDs in one file without tripping the unique constraint on the way.
        changing = [
            existing[row.no]
            for row in rows
            if row.no in existing and existing[row.no].employee_id != _blank_to_none(row.employee_id)
        ]
        for member in changing:
            member.employee_id = None
        db.session.flush()
        for row in rows:
            values = {
                "employee_id": _blank_to_none(row.employee_id),
                "name": row.name.strip(),
                "department": _blank_to_none(row.department),
                "email": _normal_address(row.email),
            }
            member = existing.get(row.no)
            if member is None:
                db.session.add(Member(account_id=account_id, no=row.no, active=True, **values))
                inserted += 1
            else:
                for key, value in values.items():
                    setattr(member, key, value)
                updated += 1
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return inserted, updated


def _check_rows(rows, existing: dict[int, Member]) -> list[RowError]:
    """Check the parsed rows against each other and against the members already stored."""
    errors: list[RowError] = []
    seen_no: dict[int, int] = {}
    seen_eid: dict[str, int] = {}
    in_file = {row.no for row in rows}
    # 社員IDs kept by members the file does not mention must stay unique too.
    kept_eids = {m.employee_id: m.no for no, m in existing.items() if no not in in_file and m.employee_id}
    for row in rows:
        if not isinstance(row.no, int) or not 0 < row.no < 2**31:
            errors.append(RowError("No.は1以上の整数にしてください。", row.line, "No.", str(row.no)))
        elif row.no in seen_no:
            errors.append(RowError(f"No.が{seen_no[row.no]}行目と重複しています。", row.line, "No.", str(row.no)))
        else:
            seen_no[row.no] = row.line
        if not (row.name or "").strip():
            errors.append(RowError("氏名を入力してください。", row.line, "氏名", row.name or ""))
        email = _blank_to_none(row.email)
        if email and not is_address(email):
            errors.append(RowError("メールアドレスの形式が正しくありません。", row.line, "メールアドレス", email))
        eid = _blank_to_none(row.employee_id)
        if eid:
            if eid in seen_eid:
                errors.append(RowError(f"社員IDが{seen_eid[eid]}行目と重複しています。", row.line, "社員ID", eid))
            elif eid in kept_eids:
                errors.append(
                    RowError(f"社員IDは既に No.{kept_eids[eid]} のメンバーが使っています。", row.line, "社員ID", eid)
                )
            else:
                seen_eid[eid] = row.line
    return _dedupe(errors)


def _dedupe(errors: list[RowError]) -> list[RowError]:
    """Drop exact repeats (the parser may already have reported the same problem)."""
    out: list[RowError] = []
    for error in errors:
        if error not in out:
            out.append(error)
    return out


def _normal_address(text: str | None) -> str | None:
    """A checked member address in its normal form, or None when blank."""
    mail = _blank_to_none(text)
    return normalize_address(mail) if mail else None


def _clean(
    account_id: int,
    member_id: int | None,
    no: int | str | None,
    employee_id: str | None,
    name: str | None,
    department: str | None,
    email: str | None,
) -> dict:
    """Validate one member's fields; return the values to store or raise Invalid with every field's error."""
    problems: dict[str, list[str]] = {}
    number = _parse_no(no)
    if number is None:
        problems["no"] = ["No.は1以上の整数で入力してください。"]
    elif _taken(account_id, member_id, Member.no, number):
        problems["no"] = [f"No.{number} は既に使われています。"]
    eid = _blank_to_none(employee_id)
    if eid and len(eid) > 64:
        problems["employee_id"] = ["社員IDは64文字以内で入力してください。"]
    elif eid and _taken(account_id, member_id, Member.employee_id, eid):
        problems["employee_id"] = [f"社員ID「{eid}」は既に使われています。"]
    clean_name = (name or "").strip()
    if not clean_name:
        problems["name"] = ["氏名を入力してください。"]
    elif len(clean_name) > 200:
        problems["name"] = ["氏名は200文字以内で入力してください。"]
    dept = _blank_to_none(department)
    if dept and len(dept) > 200:
        problems["department"] = ["部署は200文字以内で入力してください。"]
    mail = _blank_to_none(email)
    if mail:
        try:
            mail = normalize_address(mail)
        except InvalidAddress:
            problems["email"] = [f"メールアドレス「{mail}」の形式が正しくありません。"]
    if problems:
        field, messages = next(iter(problems.items()))
        raise Invalid(messages[0], field=field, errors=problems)
    return {"no": number, "employee_id": eid, "name": clean_name, "department": dept, "email": mail}


def _parse_no(value: int | str | None) -> int | None:
    """Read No. as a positive integer; full-width digits are accepted."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    text = unicodedata.normalize("NFKC", value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 10:
        return None
    number = int(text)
    # SQLite and PostgreSQL integers stop at 2**31 - 1 for this column type.
    return number if 0 < number < 2**31 else None


def _taken(account_id: int, member_id: int | None, column, value) -> bool:
    """Tell whether another member of the account already has `value` in `column`."""
    query = db.select(Member.id).where(Member.account_id == account_id, column == value)
    if member_id is not None:
        query = query.where(Member.id != member_id)
    return db.session.scalar(query.limit(1)) is not None


def _blank_to_none(value: str | None) -> str | None:
    """Strip a text field; an empty one is stored as NULL."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None
