"""`flask accounts …`, `flask members import`, `flask columns add` through the CLI runner."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Account, IntegrationSettings, User
from app.services import accounts as account_service
from app.services import columns as column_service
from app.services import members as member_service
from app.services import users as user_service
from tests.fixtures.ingest import write_file

HEADER = "No.,社員ID,氏名,部署,メールアドレス\r\n"


def import_members(runner, tmp_path, slug: str, rows: str, encoding: str = "cp932"):
    """`flask members import SLUG members.csv` of HEADER + rows, written in `encoding`."""
    return runner.invoke(args=["members", "import", slug, write_file(tmp_path, "members.csv", (HEADER + rows).encode(encoding))])


def output(result) -> str:
    """stdout and stderr together, as an operator sees them in a terminal (Click >= 8.2 mixes them here)."""
    return result.output


@pytest.fixture
def acme(runner):
    result = runner.invoke(args=["accounts", "create", "acme", "--name", "アクメ株式会社",
                                 "--admin-email", "boss@acme.example", "--admin-password", "password-123"])
    assert result.exit_code == 0, output(result)
    return account_service.get_by_slug("acme")


ROOT = Path(__file__).resolve().parent.parent


def test_first_command_on_a_new_data_folder_brings_the_schema_up_to_date(tmp_path, empty_database_url):
    # What an operator does before the first run.py: no traceback, no migration chatter, exit 0.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RENKEI_SECRET_KEY")}
    env["RENKEI_DATA_DIR"] = str(tmp_path / "new" / "data")
    if empty_database_url:
        env["DATABASE_URL"] = empty_database_url
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    create = subprocess.run([*flask, "accounts", "create", "acme", "--name", "アクメ株式会社",
                             "--admin-email", "boss@acme.example", "--admin-password", "password-123"],
                            env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert create.returncode == 0, create.stderr
    assert "アカウントを作成しました (account created): acme" in create.stdout
    assert "Traceback" not in create.stderr and "alembic" not in create.stderr, create.stderr
    listing = subprocess.run([*flask, "accounts", "list"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^acme\tアクメ株式会社\t", listing.stdout, re.MULTILINE), listing.stdout
    assert listing.stderr == ""


def test_create_account_with_given_password(runner, app):
    result = runner.invoke(args=["accounts", "create", "Acme", "--name", "アクメ株式会社",
                                 "--admin-email", "Boss@Acme.example", "--admin-password", "password-123"])
    assert result.exit_code == 0, output(result)
    assert "slug: acme" in result.output
    assert "admin email: boss@acme.example" in result.output
    assert "admin password: password-123" in result.output
    account = account_service.get_by_slug("acme")
    assert account.name == "アクメ株式会社" and account.integration_enabled is False
    assert db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == account.id))
    admin = db.session.scalar(db.select(User).where(User.email == "boss@acme.example"))
    assert admin.account_id == account.id and admin.is_admin
    assert user_service.authenticate("boss@acme.example", "password-123") is not None


def test_create_account_generates_a_password_that_works(runner, app):
    result = runner.invoke(args=["accounts", "create", "beta", "--name", "ベータ", "--admin-email", "a@beta.example"])
    assert result.exit_code == 0, output(result)
    password = re.search(r"admin password: (\S+)", result.output).group(1)
    assert len(password) >= 12
    assert user_service.authenticate("a@beta.example", password) is not None


def test_duplicate_slug_is_refused(runner, acme):
    result = runner.invoke(args=["accounts", "create", "acme", "--name", "別会社", "--admin-email", "x@other.example"])
    assert result.exit_code == 1
    assert "スラッグ「acme」のアカウントは既にあります。" in result.stderr
    assert db.session.scalar(db.select(db.func.count(Account.id))) == 1
    assert user_service.authenticate("x@other.example", "anything") is None


@pytest.mark.parametrize("args, message", [
    (["accounts", "create", "Bad Slug!", "--name", "X", "--admin-email", "x@x.example"], "スラッグ"),
    (["accounts", "create", "okslug", "--name", "X", "--admin-email", "x@x.example", "--admin-password", "short"],
     "パスワードは8文字以上"),
])
def test_bad_create_input_exits_1(runner, app, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert message in output(result)
    assert account_service.list_accounts() == []


def test_missing_required_option_is_a_usage_error(runner, app):
    result = runner.invoke(args=["accounts", "create", "acme", "--name", "X"])
    assert result.exit_code != 0
    assert "--admin-email" in output(result)


def test_list_accounts(runner, acme):
    runner.invoke(args=["accounts", "create", "beta", "--name", "ベータ商事", "--admin-email", "a@beta.example"])
    member_service.create_member(acme.id, 1, None, "山田")
    member_service.create_member(acme.id, 2, None, "田中")
    runner.invoke(args=["accounts", "enable-integration", "beta"])
    result = runner.invoke(args=["accounts", "list"])
    assert result.exit_code == 0, output(result)
    lines = result.output.splitlines()
    assert lines[0].split("\t") == ["slug", "name", "integration", "members"]
    assert lines[1].split("\t") == ["acme", "アクメ株式会社", "off", "2"]
    assert lines[2].split("\t") == ["beta", "ベータ商事", "on", "0"]


def test_list_without_accounts(runner, app):
    result = runner.invoke(args=["accounts", "list"])
    assert result.exit_code == 0 and result.output.startswith("アカウントはありません")


def test_enable_and_disable_integration(runner, acme):
    result = runner.invoke(args=["accounts", "enable-integration", "acme"])
    assert result.exit_code == 0, output(result)
    assert "integration on" in result.output
    db.session.expire_all()
    assert account_service.get_by_slug("acme").integration_enabled is True
    result = runner.invoke(args=["accounts", "disable-integration", "acme"])
    assert result.exit_code == 0 and "integration off" in result.output
    db.session.expire_all()
    assert account_service.get_by_slug("acme").integration_enabled is False


@pytest.mark.parametrize("args", [
    ["accounts", "enable-integration", "nosuch"],
    ["accounts", "disable-integration", "nosuch"],
    ["columns", "add", "nosuch", "売上"],
])
def test_unknown_account_exits_1(runner, app, args):
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert 'アカウント "nosuch" はありません (no account with slug "nosuch")' in output(result)


def test_members_import_unknown_account_exits_1(runner, app, tmp_path):
    result = import_members(runner, tmp_path, "nosuch", "1,,山田,,\r\n")
    assert result.exit_code == 1
    assert 'アカウント "nosuch" はありません (no account with slug "nosuch")' in output(result)


def test_members_import_inserts_then_updates(runner, acme, tmp_path):
    result = import_members(runner, tmp_path, "acme", "1,00123,髙橋 一郎,営業①課,t@acme.example\r\n2,,ｶﾀｶﾅ,,\r\n")
    assert result.exit_code == 0, output(result)
    assert "inserted=2 updated=0" in result.output
    result = import_members(runner, tmp_path, "acme", "2,E002,ｶﾀｶﾅ ﾀﾛｳ,営業,\n3,E003,新人,,\n", "utf-8")
    assert result.exit_code == 0, output(result)
    assert "inserted=1 updated=1" in result.output
    db.session.expire_all()
    assert [(m.no, m.employee_id, m.name, m.department) for m in member_service.list_members(acme.id)] == [
        (1, "00123", "髙橋 一郎", "営業①課"),
        (2, "E002", "ｶﾀｶﾅ ﾀﾛｳ", "営業"),
        (3, "E003", "新人", None),
    ]


def test_members_import_bad_csv_lists_every_error_and_stores_nothing(runner, acme, tmp_path):
    result = import_members(runner, tmp_path, "acme",
                            "1,E1,山田,,\r\n" + "x,E2,田中,,\r\n" + "3,E3,,,\r\n" + "4,E1,鈴木,,\r\n")
    assert result.exit_code == 1
    text = output(result)
    assert "3 件のエラー" in text
    assert "3行目" in text and "列「No.」" in text
    assert "4行目" in text and "列「氏名」" in text
    assert "5行目" in text and "列「社員ID」" in text
    assert "5行目" in result.stderr and "inserted" not in result.stdout
    assert member_service.list_members(acme.id) == []


def test_members_import_reports_a_csv_syntax_error_and_a_duplicate_together_capped_at_100(runner, acme, tmp_path):
    rows = "1,E1,山田,,\r\n" + '2,"E2"x,田中,,\r\n' + "3,E1,鈴木,,\r\n"  # syntax error on 3, duplicate on 4
    rows += "".join(f"{no},E{no},,,\r\n" for no in range(10, 130))           # 120 lines without 氏名
    result = import_members(runner, tmp_path, "acme", rows)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "122 件のエラー" in lines[0]
    assert lines[1].startswith('  3行目 値「2,"E2"x,田中,,」: CSVの形式が正しくありません')
    assert lines[2] == "  4行目 列「社員ID」 値「E1」: 社員IDが2行目と重複しています"
    assert len([line for line in lines if line.startswith("  ") and "行目" in line]) == 100
    assert lines[-1].startswith("  ほかに 22 件のエラーがあります(最初の 100 件を表示しました)。")
    assert member_service.list_members(acme.id) == []


def test_members_import_refuses_formula_keys_and_stores_nothing(runner, acme, tmp_path):
    result = import_members(runner, tmp_path, "acme", '1,"=HYPERLINK(""http://evil.example"")",山田,,\r\n2,-2+3,田中,,\r\n')
    assert result.exit_code == 1
    text = output(result)
    assert "2 件のエラー" in text
    assert text.count("社員IDは「=」「+」「-」「@」で始められません") == 2
    assert member_service.list_members(acme.id) == []


def test_members_import_missing_file_is_a_usage_error(runner, acme, tmp_path):
    result = runner.invoke(args=["members", "import", "acme", str(tmp_path / "none.csv")])
    assert result.exit_code != 0
    assert member_service.list_members(acme.id) == []


def test_columns_add(runner, acme):
    result = runner.invoke(args=["columns", "add", "acme", "売上", "--unit", "円"])
    assert result.exit_code == 0, output(result)
    assert "グラフ列「売上」を追加しました(単位: 円)" in result.output
    result = runner.invoke(args=["columns", "add", "acme", "件数"])
    assert result.exit_code == 0, output(result)
    assert [(c.name, c.unit, c.position) for c in column_service.list_columns(acme.id)] == [
        ("売上", "円", 1), ("件数", "", 2),
    ]


@pytest.mark.parametrize("name, message", [("売上", "「売上」という列は既にあります。"), ("備考", "使えません"),
                                           ("=1+1", "グラフ列の名前は「=」「+」「-」「@」で始められません"),
                                           ("-2+3", "で始められません"), ("@SUM(1+1)", "で始められません")])
def test_columns_add_bad_name_exits_1(runner, acme, name, message):
    column_service.add_column(acme.id, "売上")
    result = runner.invoke(args=["columns", "add", "acme", "--", name])  # "--": a name may start with "-"
    assert result.exit_code == 1
    assert message in output(result)
    assert len(column_service.list_columns(acme.id)) == 1


@pytest.mark.parametrize("email", ["admin@acme.test", "it@corp.internal", "erp@sales.local", "x@host.lan"])
def test_create_account_accepts_an_intranet_admin_address(runner, app, email):
    result = runner.invoke(args=["accounts", "create", "acme", "--name", "アクメ株式会社",
                                 "--admin-email", email, "--admin-password", "password-123"])
    assert result.exit_code == 0, output(result)
    assert user_service.authenticate(email, "password-123") is not None


def test_create_account_refuses_an_invalid_admin_address(runner, app):
    result = runner.invoke(args=["accounts", "create", "acme", "--name", "アクメ株式会社",
                                 "--admin-email", "admin@acme..local", "--admin-password", "password-123"])
    assert result.exit_code == 1
    assert "メールアドレス「admin@acme..local」の形式が正しくありません。" in output(result)
    assert db.session.scalar(db.select(db.func.count(Account.id))) == 0
