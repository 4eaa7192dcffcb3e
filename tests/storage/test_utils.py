"""seproxy.storage.utils: the one path-component rule behind check_lfn and the proxy's fileIDs."""

from __future__ import annotations

import pytest

from seproxy.errors import PathError
from seproxy.staging.namespace import check_name
from seproxy.storage.utils import check_lfn, component_problem


@pytest.mark.parametrize(("part", "problem"), [
    ("data.txt", None), ("", None), ("50%", None),
    ("..", "relative"), ("%2e%2e", "relative"), ("%252e%252e", "relative"), (".", "relative"),
    ("a%2fb", "separator"), ("a\\b", "separator"), ("a%255cb", "separator"),
    ("a\x00b", "control"), ("a%00b", "control"), ("a%0ab", "control"),
])
def test_component_problem(part: str, problem: str | None) -> None:
    assert component_problem(part) == problem


@pytest.mark.parametrize("part", ["%252e%252e", "a%2fb", "a%0ab"])
def test_lfns_and_file_ids_refuse_the_same_components(part: str) -> None:
    with pytest.raises(PathError):
        check_lfn(f"/dirac/{part}/f", "dirac")
    with pytest.raises(PathError):
        check_name(part)
    assert check_lfn("/dirac//ok/f", "dirac") == "/dirac//ok/f"  # empty parts: fine in an LFN
    with pytest.raises(PathError):
        check_name("")  # ... but not as a staging name
