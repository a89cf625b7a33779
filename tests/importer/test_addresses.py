"""The one e-mail address rule (app/importer/addresses.py), driven by the tables of tests/fixtures/addresses.py."""
from __future__ import annotations

import pytest

from app.importer.addresses import InvalidAddress, is_address, normalize_address
from tests.fixtures.addresses import INVALID, VALID


@pytest.mark.parametrize("typed, normal", VALID)
def test_valid_addresses_are_accepted_in_their_normal_form(typed, normal):
    assert normalize_address(typed) == normal
    assert is_address(typed)


@pytest.mark.parametrize("typed", INVALID)
def test_invalid_addresses_are_refused(typed):
    with pytest.raises(InvalidAddress):
        normalize_address(typed)
    assert not is_address(typed)
