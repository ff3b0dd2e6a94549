"""quota.prices.estimate_tokens on any str, lone surrogates included: a text that cannot be
encoded (a surrogate-escaped command-line argument, say) is still counted, never a crash."""

from __future__ import annotations

import pytest

from quota.prices import estimate_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        pytest.param("", 0, id="empty"),
        pytest.param("abc", 1, id="ascii"),
        pytest.param("\u20ac", 1, id="three-utf8-bytes"),
        pytest.param("\ud800", 1, id="lone-high-surrogate"),
        pytest.param("how much \udcff today?", 7, id="surrogate-escaped-byte"),
    ],
)
def test_a_lone_surrogate_is_counted_not_a_crash(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens
