"""resourceVersion as the API parses it (apiserver's ``APIObjectVersioner``)."""
from __future__ import annotations

from ..machinery import errors as E
from ..machinery.validation import go_quote


def parse_resource_version(rv: str) -> int:
    """apiserver's ``APIObjectVersioner.ParseResourceVersion``: "" and "0" are 0, anything
    else must be what Go's ``strconv.ParseUint(rv, 10, 64)`` accepts (ASCII digits only,
    no sign or space, at most 2^64-1); 400 with kube's message otherwise."""
    if rv in ("", "0"):
        return 0
    if rv.isascii() and rv.isdigit():
        n = int(rv)
        if n < 1 << 64:
            return n
        problem = "value out of range"
    else:
        problem = "invalid syntax"
    q = go_quote(rv)
    raise E.BadRequest(f"invalid resource version: resourceVersion: Invalid value: {q}: "
                       f"strconv.ParseUint: parsing {q}: {problem}")
