"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Behaviour and error answers follow k8s.io/apiserver's ``endpoints/handlers/patch.go``
(v0.36) and the libraries it uses: ``gopkg.in/evanphx/json-patch.v4`` for JSON and merge
patches, ``k8s.io/apimachinery/pkg/util/strategicpatch`` for strategic merge patches.

How kube answers a bad patch (every failure here is a :class:`PatchError`, a
``StatusError`` that renders exactly so):

* undecodable patch body → 400 ``BadRequest`` with Go's decoder message
  (``error decoding patch: `` first when ``fieldValidation`` is Strict or Warn);
* more than 10000 JSON-patch operations → 413 ``RequestEntityTooLarge``;
* a JSON-patch operation that fails (missing path, bad index, failed ``test``, ...) →
  422 ``Invalid`` with the generic message ``the server rejected our request due to an
  error in our request`` (kube drops the library's text; it is kept in ``.detail``);
* merge patch that is ``null`` or not JSON → 400 ``Invalid JSON Patch``;
* strategic merge patch: bad directive formats → 400, lists of lists or content that
  does not match ``$retainKeys`` → 422 (generic message), anything else → 500 with the
  library's text. Custom resources (CRDs) do not offer strategic merge patch at all
  (415); types served by k8s.io/apiserver from Go structs (aggregated and built-in) do.
"""
from __future__ import annotations

from ..jsonscan import go_json_syntax_error
from .decode import decode_json_patch, decode_merge_patch, decode_strategic_merge_patch
from .errors import DEFAULT_MAX_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS, UNPROCESSABLE_MESSAGE, PatchError
from .jsonpatch import apply_json_patch
from .mergepatch import apply_merge_patch
from .strategic import go_sprint, strategic_merge_patch

__all__ = ["DEFAULT_MAX_COPY_BYTES", "MAX_JSON_PATCH_OPERATIONS", "UNPROCESSABLE_MESSAGE", "PatchError",
           "apply_json_patch", "apply_merge_patch", "decode_json_patch", "decode_merge_patch",
           "decode_strategic_merge_patch", "go_json_syntax_error", "go_sprint", "strategic_merge_patch"]
