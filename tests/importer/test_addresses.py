"""The one e-mail address rule (app/importer/addresses.py), table-driven; other tests reuse the tables."""
from __future__ import annotations

import pytest

from app.importer.addresses import InvalidAddress, is_address, normalize_address

# (as typed, as stored)
VALID = [
    ("erp@sales.local", "erp@sales.local"),            # Active Directory domains of Japanese offices
    ("it@corp.internal", "it@corp.internal"),
    ("admin@acme.test", "admin@acme.test"),
    ("x@host.lan", "x@host.lan"),
    ("batch@fileserver", "batch@fileserver"),           # a dotless intranet host
    ("sales+erp@example.co.jp", "sales+erp@example.co.jp"),
    ("Taro.Yamada@Example.CO.JP", "Taro.Yamada@example.co.jp"),
    ("user@xn--r8jz45g.jp", "user@例え.jp"),             # IDN, punycode or not
    ("user@例え.jp", "user@例え.jp"),
    ("山田@例え.jp", "山田@例え.jp"),                     # SMTPUTF8 local part
    ("ｅｒｐ＠ｓａｌｅｓ．ｌｏｃａｌ", "erp@sales.local"),   # typed with a full-width IME
    ("  erp@sales.local  ", "erp@sales.local"),
    ("o'brien_x-y@sub.example.local", "o'brien_x-y@sub.example.local"),
]

INVALID = [
    "not-an-email",
    "",
    "@example.co.jp",
    "erp@",
    "a b@example.co.jp",
    "a..b@example.co.jp",
    ".a@example.co.jp",
    "a@example..local",
    "a@-sales.local",
    "a@sales_dept.local",
    "a@sales.local.",
    "a@@sales.local",
    '"a b"@example.co.jp',
    "a@[192.0.2.1]",
    "Taro <taro@example.co.jp>",
    "a@" + "x" * 64 + ".local",
]


@pytest.mark.parametrize("typed, normal", VALID)
def test_valid_addresses_are_accepted_in_their_normal_form(typed, normal):
    assert normalize_address(typed) == normal
    assert is_address(typed)


@pytest.mark.parametrize("typed", INVALID)
def test_invalid_addresses_are_refused(typed):
    with pytest.raises(InvalidAddress):
        normalize_address(typed)
    assert not is_address(typed)
