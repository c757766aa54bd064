"""Content negotiation (``Accept`` / ``Content-Type``) as k8s.io/apiserver's negotiation
package does it: JSON and YAML, and the ``as=Table`` / ``as=PartialObjectMetadata[List]``
conversions of ``meta.k8s.io``. Protobuf is not served: a client that offers JSON or ``*/*``
besides protobuf (kube-controller-manager does) gets JSON."""
from __future__ import annotations

from dataclasses import dataclass

from . import errors as E

JSON = "application/json"
YAML = "application/yaml"
ACCEPTED = [JSON, YAML]
PROTOBUF = "application/vnd.kubernetes.protobuf"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
BODY_TYPES = {JSON: "json", YAML: "yaml", "application/yml": "yaml", "text/yaml": "yaml"}


@dataclass(slots=True, frozen=True)
class Output:
    """What to send: ``media`` (json|yaml), ``conv`` ('' | Table | PartialObjectMetadata |
    PartialObjectMetadataList) and the meta.k8s.io version for conversions."""

    media: str = "json"
    conv: str = ""
    conv_version: str = "v1"
    pretty: bool = False

    @property
    def content_type(self) -> str:
        return YAML if self.media == "yaml" else JSON


DEFAULT = Output()


def _parse_accept(header: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for i, part in enumerate(header.split(",")):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(";")]
        mt = bits[0].lower()
        params: dict[str, str] = {}
        q = 1.0
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                k, v = k.strip().lower(), v.strip().strip('"')
                if k == "q":
                    try:
                        q = float(v)
                    except ValueError:
                        q = 0.0
                else:
                    params[k] = v
        out.append((mt, params, q, -i))
    out.sort(key=lambda t: (t[2], t[3]), reverse=True)
    return [(mt, p, q) for mt, p, q, _ in out if q > 0]


_CONVERSIONS = {"table": "Table", "partialobjectmetadata": "PartialObjectMetadata",
                "partialobjectmetadatalist": "PartialObjectMetadataList"}


def negotiate(accept: str | None, *, allowed_conv: tuple[str, ...] = ("Table", "PartialObjectMetadata",
                                                                       "PartialObjectMetadataList"),
              pretty: bool = False) -> Output:
    """Pick the response form; raises 406 NotAcceptable when nothing offered can be served."""
    if not accept:
        return Output(pretty=pretty)
    for mt, params, _q in _parse_accept(accept):
        if mt in ("*/*", "application/*"):
            return Output(pretty=pretty)
        if mt in (JSON, YAML, "application/yml"):
            media = "yaml" if mt != JSON else "json"
            as_ = params.get("as")
            if as_:
                conv = _CONVERSIONS.get(as_.lower())
                if conv is None or conv not in allowed_conv:
                    continue
                if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
                    continue
                return Output(media, conv, params["v"], pretty)
            if params.get("g") or params.get("v"):
                continue
            return Output(media, "", "v1", pretty)
    # kube's words, listing what this server really produces; a client that can only take
    # protobuf is told why it gets nothing (kube would serve it)
    why = f"{PROTOBUF} is not served by this server; offer {JSON} as well" if PROTOBUF in (accept or "").lower() else ""
    raise E.NotAcceptable(ACCEPTED, why)


def body_kind(content_type: str | None, *, patch: bool) -> str:
    """Classify a request body's Content-Type; raise 415 for an unsupported one."""
    mt = (content_type or "").split(";", 1)[0].strip().lower()
    if patch:
        kind = PATCH_TYPES.get(mt)
        if kind is None:
            raise E.UnsupportedMediaType(mt, list(PATCH_TYPES))
        return kind
    if not mt:
        return "json"
    kind = BODY_TYPES.get(mt)
    if kind is None:
        raise E.UnsupportedMediaType(mt, ACCEPTED)
    return kind
