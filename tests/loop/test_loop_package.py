"""The loop package's surface: an explicit sorted ``__all__``, each name documented."""

from __future__ import annotations

import loopstack.loop


def test_all_is_sorted_and_every_name_is_there_with_a_docstring() -> None:
    names = loopstack.loop.__all__
    assert names == sorted(names)
    for name in names:
        value = getattr(loopstack.loop, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), name
