"""The other half of the quality gate's patterns given only as YAML files (tests/test_quality_gate.py says what is
gated and why they are split)."""

from __future__ import annotations

import pytest

from tests.test_quality_gate import NEW_PATTERN_IDS, check_new_pattern


@pytest.mark.parametrize("pattern_id", NEW_PATTERN_IDS[1::2])
def test_a_pattern_nobody_tuned_for_calibrates_itself(pattern_id: str) -> None:
    check_new_pattern(pattern_id)
