"""Members (メンバー設定): add, edit, deactivate, bulk load from CSV, and the key lookup the importer uses."""
from __future__ import annotations

from sqlalchemy import insert, select, update

from ..errors import ErrorList, ImportRejected, Invalid, NotFound, RowError
from ..extensions import db
from ..importer.addresses import InvalidAddress, normalize_address
from ..importer.cells import formula_message, starts_like_formula
from ..importer.members import MAX_NO, NO_MESSAGE, parse_no
from ..models import Member

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


def ids_by_key(account_id: int, member_key: str) -> dict[str, int]:
    """Active members' ids by the key text a results file uses: str(No.) ("no") or the exact 社員ID."""
    key = Member.no if member_key == "no" else Member.employee_id
    rows = db.session.execute(
        select(key, Member.id).where(Member.account_id == account_id, Member.active.is_(True), key.is_not(None))
    )
    return {str(value): member_id for value, member_id in rows}


def count_members(account_id: int) -> int:
    """Return how many members (active or not) the account has."""
    return db.session.scalar(db.select(db.func.count(Member.id)).where(Member.account_id == account_id)) or 0


def get_member(account_id: int, member_id: int) -> Member:
    """Return the account's member or raise NotFound (never another account's)."""
    member = db.session.get(Member, member_id)
    if member is None or member.account_id != account_id:
        raise NotFound("メンバーが見つかりません。")
    return member


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

    All or nothing: any error raises ImportRejected with every error of the file found in one
    reading (the first MAX_LISTED_ERRORS by line, every one counted) and stores nothing. The active flag of existing members is left as it is.
    The file is read twice, row by row, as results files are: once to check every row, once
    to write them in batches. No list of all rows and no ORM object per row is ever built.
    """
    from ..importer.encoding import decode
    from ..importer.members import MemberReader

    text, _encoding = decode(data)
    del data  # the caller's reference only: the decoded text is what is read from here on
    # No. -> (member id, 社員ID) of every existing member: a few small values per member.
    existing = {no: (member_id, employee_id) for member_id, no, employee_id in db.session.execute(
        db.select(Member.id, Member.no, Member.employee_id).where(Member.account_id == account_id))}

    reader = MemberReader(text)
    errors = reader.errors
    changing: list[int] = []  # members whose 社員ID changes: cleared first, so two can swap IDs
    for row in reader.rows():  # the reader checks each row (addresses included); here: the stored members
        current = existing.get(row.no)
        if current is not None and current[1] != row.employee_id:
            changing.append(current[0])
    # 社員IDs kept by members the file does not mention must stay unique too. These are known
    # only once the whole file is read; they join the reader's errors in line order.
    in_file = reader.lines_by_employee_id
    taken = sorted((in_file[employee_id], no, employee_id) for no, (_member_id, employee_id) in existing.items()
                   if employee_id and no not in reader.lines_by_no and employee_id in in_file)
    if errors or taken:
        raise ImportRejected(_with_taken_ids(errors, taken))

    inserted = updated = 0
    try:
        for start in range(0, len(changing), _WRITE_BATCH):
            db.session.execute(update(Member), [{"id": member_id, "employee_id": None}
                                                for member_id in changing[start:start + _WRITE_BATCH]])
        new_rows: list[dict] = []
        changed_rows: list[dict] = []
        for row in MemberReader(text).rows():
            values = {"employee_id": row.employee_id, "name": row.name, "department": row.department,
                      "email": _normal_address(row.email)}
            current = existing.get(row.no)
            if current is None:
                new_rows.append({"account_id": account_id, "no": row.no, "active": True, **values})
            else:
                changed_rows.append({"id": current[0], **values})
            if len(new_rows) + len(changed_rows) >= _WRITE_BATCH:
                inserted, updated = _write(new_rows, changed_rows, inserted, updated)
        inserted, updated = _write(new_rows, changed_rows, inserted, updated)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return inserted, updated


def _with_taken_ids(errors: ErrorList, taken: list[tuple[int, int, str]]) -> ErrorList:
    """The reader's errors and those of 社員IDs other members keep, by line: the first `errors.cap` kept, all counted.

    The reader kept its first errors in line order, so these and the taken IDs hold the
    file's first errors whatever the cap dropped.
    """
    found = [RowError(f"社員IDは既に No.{no} のメンバーが使っています。", line, "社員ID", employee_id)
             for line, no, employee_id in taken]
    merged = ErrorList(sorted([*errors, *found], key=lambda error: error.line or 0)[:errors.cap], cap=errors.cap)
    merged.total = errors.total + len(found)
    return merged


# Members written per statement by import_members.
_WRITE_BATCH = 2000


def _write(new_rows: list[dict], changed_rows: list[dict], inserted: int, updated: int) -> tuple[int, int]:
    """Insert and update one batch of members (Core statements, no ORM objects); empty the lists."""
    if new_rows:
        db.session.execute(insert(Member), new_rows)
    if changed_rows:
        db.session.execute(update(Member), changed_rows)  # by primary key, one executemany
    counts = inserted + len(new_rows), updated + len(changed_rows)
    new_rows.clear()
    changed_rows.clear()
    return counts


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
        problems["no"] = [f"{NO_MESSAGE}。"]
    elif _taken(account_id, member_id, Member.no, number):
        problems["no"] = [f"No.{number} は既に使われています。"]
    eid = _blank_to_none(employee_id)
    if eid and len(eid) > 64:
        problems["employee_id"] = ["社員IDは64文字以内で入力してください。"]
    elif starts_like_formula(eid):
        problems["employee_id"] = [f"{formula_message('社員ID')}。"]
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
        return value if 0 < value <= MAX_NO else None
    return parse_no(value or "")


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
