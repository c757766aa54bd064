"""The errors kube answers a bad patch with (see the package docstring)."""
from __future__ import annotations

from ..errors import StatusError

MAX_JSON_PATCH_OPERATIONS = 10000
#: kube's ``JSONPatchMaxCopyBytes`` default (the max request body size, 3 MiB)
DEFAULT_MAX_COPY_BYTES = 3 * 1024 * 1024
UNPROCESSABLE_MESSAGE = "the server rejected our request due to an error in our request"


class PatchError(StatusError):
    """A patch kube would refuse; ``detail`` keeps the underlying library message."""

    def __init__(self, message: str, *, code: int, reason: str, detail: str = ""):
        super().__init__(message, code=code, reason=reason)
        self.detail = detail or message

    def status(self) -> dict:
        st = super().status()
        if not self.reason:
            del st["reason"]  # Go omits an empty reason
        if self.code == 422:
            # kube's NewGenericServerResponse: its fixed message and details without the cause,
            # so a client never learns which operation failed. extserver keeps the message and
            # adds the one cause (the patch library's words, e.g. "testing value /spec/x failed:
            # test failed"): clients matching on the message still match. Code stays last.
            st["details"] = {"causes": [{"message": self.detail}]} if self.detail != self.message else {}
            st["code"] = st.pop("code")
        return st


def _bad_request(message: str) -> PatchError:
    return PatchError(message, code=400, reason="BadRequest")


def _unprocessable(detail: str) -> PatchError:
    return PatchError(UNPROCESSABLE_MESSAGE, code=422, reason="Invalid", detail=detail)


def _internal(message: str) -> PatchError:
    # An error kube's handler does not classify: 500 with an empty reason.
    return PatchError(message, code=500, reason="")
