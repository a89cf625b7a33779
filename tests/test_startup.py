"""Start-up of a process that only imports (`flask import-csv`): the libraries of other channels stay unloaded."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loaded where they are used (SFTP, mail authentication, the overdue check, address checks,
# sealed secrets, workbooks): together about 0.4 s and 25 MiB of every process's start-up when
# imported at the top.
LAZY = ("asyncssh", "dkim", "spf", "dns.resolver", "holidays", "email_validator", "cryptography",
        "python_calamine")

PROBE = """
import sys
from app import create_app
create_app({"DATA_DIR": sys.argv[1], "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite:///" + sys.argv[1] + "/a.db"})
print(" ".join(name for name in sys.argv[2:] if name in sys.modules))
"""


def test_app_start_leaves_channel_libraries_unloaded(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), *LAZY], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == []
