"""Name, label and ``ObjectMeta`` validation with Kubernetes' exact messages.

Mirrors ``k8s.io/apimachinery`` v0.36 (Kubernetes 1.36): ``pkg/util/validation``,
``pkg/api/validate/content``, ``pkg/api/validation`` (``ValidateObjectMetaAccessor``,
``ValidateObjectMetaAccessorUpdate``) and ``pkg/apis/meta/v1/validation``.

Lengths are counted in UTF-8 bytes, as Go's ``len(string)`` does. Every ``is_*`` function
returns a list of messages (empty when valid); the ``validate_*`` functions return
:class:`~extserver.machinery.errors.FieldError` lists ready for ``Invalid``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import FieldError, forbidden, invalid, required, too_long

# ---------------------------------------------------------------------------------------
# Go formatting helpers (shared by the selector and patch modules for exact messages)
# ---------------------------------------------------------------------------------------

_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r",
               "\t": r"\t", "\v": r"\v", "\\": r"\\", '"': r"\""}


def go_quote(s: str) -> str:
    """``strconv.Quote`` / ``%q``: a double-quoted Go string literal."""
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        else:
            cp = ord(ch)
            if cp < 0x20 or cp == 0x7F:
                out.append(f"\\x{cp:02x}")
            elif cp < 0x10000:
                out.append(f"\\u{cp:04x}")
            else:
                out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def _byte_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


# ---------------------------------------------------------------------------------------
# Message builders (validation.MaxLenError, RegexError, EmptyError)
# ---------------------------------------------------------------------------------------

def max_len_error(length: int) -> str:
    """``validation.MaxLenError`` (``characters``)."""
    return f"must be no more than {length} characters"


def _content_max_len_error(length: int) -> str:
    """``content.MaxLenError`` (``bytes``), used for label keys and values since 1.35."""
    return f"must be no more than {length} bytes"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """``validation.RegexError``."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    ex = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {ex}regex used for validation is '{fmt}')"


EMPTY_ERROR = "must be non-empty"

# ---------------------------------------------------------------------------------------
# DNS names
# ---------------------------------------------------------------------------------------

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MAX_LENGTH = 63
_DNS1123_LABEL_ERR = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                      "or '-', and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
_DNS1123_SUBDOMAIN_ERR = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric character")
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MAX_LENGTH = 63
_DNS1035_LABEL_ERR = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")

_dns1123_label_re = re.compile(DNS1123_LABEL_FMT)
_dns1123_subdomain_re = re.compile(DNS1123_SUBDOMAIN_FMT)
_dns1035_label_re = re.compile(DNS1035_LABEL_FMT)


def _is_dns1123_subdomain(value: str, max_len_msg: Callable[[int], str]) -> list[str]:
    errs = []
    if _byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_msg(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _dns1123_subdomain_re.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """``validation.IsDNS1123Subdomain``."""
    return _is_dns1123_subdomain(value, max_len_error)


def is_dns1123_label(value: str) -> list[str]:
    """``validation.IsDNS1123Label``."""
    errs = []
    if _byte_len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _dns1123_label_re.fullmatch(value):
        if _dns1123_subdomain_re.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """``validation.IsDNS1035Label``."""
    errs = []
    if _byte_len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _dns1035_label_re.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_ERR, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


# ---------------------------------------------------------------------------------------
# Qualified names (label keys) and label values
# ---------------------------------------------------------------------------------------

LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_ERR = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                  "with an alphanumeric character")
LABEL_KEY_MAX_LENGTH = 63
LABEL_VALUE_FMT = "(" + LABEL_KEY_FMT + ")?"
_LABEL_VALUE_ERR = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
LABEL_VALUE_MAX_LENGTH = 63

_label_key_re = re.compile(LABEL_KEY_FMT)
_label_value_re = re.compile(LABEL_VALUE_FMT)


def is_qualified_name(value: str) -> list[str]:
    """``validation.IsQualifiedName`` (= ``content.IsLabelKey``): ``[prefix/]name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m
                        for m in _is_dns1123_subdomain(prefix, _content_max_len_error))
    else:
        return ["a valid label key "
                + regex_error(_LABEL_KEY_ERR, LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif _byte_len(name) > LABEL_KEY_MAX_LENGTH:
        errs.append("name part " + _content_max_len_error(LABEL_KEY_MAX_LENGTH))
    if not _label_key_re.fullmatch(name):
        errs.append("name part " + regex_error(_LABEL_KEY_ERR, LABEL_KEY_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """``validation.IsValidLabelValue`` (= ``content.IsLabelValue``)."""
    errs = []
    if _byte_len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(_content_max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _label_value_re.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_ERR, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


# ---------------------------------------------------------------------------------------
# Name functions: (name, prefix) -> messages, as Go's ValidateNameFunc
# ---------------------------------------------------------------------------------------

NameFunc = Callable[[str, bool], list[str]]


def validate_path_segment_name(name: str, prefix: bool) -> list[str]:
    """``path.ValidatePathSegmentName``: what the generic registry checks on every name.
    With ``prefix`` (a ``generateName``) only the forbidden substrings are checked."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _mask_trailing_dash(name: str) -> str:
    # Same as Go's maskTrailingDash, including its dropping of two characters.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    """``NameIsDNSSubdomain``."""
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    """``NameIsDNSLabel`` (also ``ValidateNamespaceName``)."""
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    """``NameIsDNS1035Label``."""
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


# ---------------------------------------------------------------------------------------
# Labels, annotations, finalizers, owner references, managed fields
# ---------------------------------------------------------------------------------------

FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
FIELD_MANAGER_MAX_LENGTH = 128
MAX_SUBRESOURCE_NAME_LENGTH = 256
FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"
_BANNED_OWNERS = {("", "v1", "Event")}


def validate_label_name(name: str, path: str) -> list[FieldError]:
    return [invalid(path, name, m) for m in is_qualified_name(name)]


def validate_labels(labels: Mapping[str, str], path: str) -> list[FieldError]:
    """``v1validation.ValidateLabels``: every error is reported on the map's path."""
    errs: list[FieldError] = []
    for k, v in labels.items():
        errs.extend(validate_label_name(k, path))
        errs.extend(invalid(path, v, m) for m in is_valid_label_value(v))
    return errs


def validate_annotations(annotations: Mapping[str, str], path: str) -> list[FieldError]:
    """``ValidateAnnotations``: keys are qualified names (case-insensitive), total size ≤ 256 KiB."""
    errs: list[FieldError] = []
    total = 0
    for k, v in annotations.items():
        errs.extend(invalid(path, k, m) for m in is_qualified_name(k.lower()))
        total += _byte_len(k) + _byte_len(v)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_finalizers(finalizers: Sequence[str], path: str) -> list[FieldError]:
    """``ValidateFinalizers``: qualified names, and not both ``orphan`` and ``foregroundDeletion``."""
    errs: list[FieldError] = []
    for f in finalizers:
        errs.extend(invalid(path, f, m) for m in is_qualified_name(f))
    if FINALIZER_ORPHAN in finalizers and FINALIZER_FOREGROUND in finalizers:
        errs.append(invalid(path, list(finalizers),
                            f"finalizer {FINALIZER_ORPHAN} and {FINALIZER_FOREGROUND} cannot be both set"))
    return errs


def _parse_api_version(api_version: str) -> tuple[str, str] | None:
    """``schema.ParseGroupVersion``: (group, version), or None when malformed."""
    if not api_version:
        return "", ""
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def validate_owner_references(refs: Sequence[Mapping[str, Any]], path: str) -> list[FieldError]:
    """``ValidateOwnerReferences``."""
    errs: list[FieldError] = []
    first_controller = ""
    for ref in refs:
        api_version = ref.get("apiVersion") or ""
        kind = ref.get("kind") or ""
        gv = _parse_api_version(api_version)
        group, version = gv if gv is not None else ("", "")
        if not version:
            errs.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not kind:
            errs.append(invalid(f"{path}.kind", kind, "must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(f"{path}.name", ref.get("name") or "", "must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(f"{path}.uid", ref.get("uid") or "", "must not be empty"))
        if (group, version, kind) in _BANNED_OWNERS:
            errs.append(invalid(path, dict(ref), f"{group}/{version}, Kind={kind} is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{ref.get('name') or ''}"
            if first_controller:
                errs.append(invalid(path, [dict(r) for r in refs],
                                    "Only one reference can have Controller set to true. "
                                    f'Found "true" in references for {first_controller} and {current}'))
            else:
                first_controller = current
    return errs


def validate_field_manager(manager: str, path: str) -> list[FieldError]:
    """``ValidateFieldManager``: at most 128 bytes, printable characters only."""
    errs: list[FieldError] = []
    if _byte_len(manager) > FIELD_MANAGER_MAX_LENGTH:
        errs.append(too_long(path, "", FIELD_MANAGER_MAX_LENGTH))
    pos = 0
    for ch in manager:
        if not ch.isprintable():
            errs.append(invalid(path, manager, f"invalid character U+{ord(ch):04X} (at position {pos})"))
        pos += _byte_len(ch)
    return errs


def validate_managed_fields(entries: Sequence[Mapping[str, Any]], path: str) -> list[FieldError]:
    """``ValidateManagedFields``."""
    errs: list[FieldError] = []
    for i, e in enumerate(entries):
        p = f"{path}[{i}]"
        op = e.get("operation") or ""
        if op not in ("Apply", "Update"):
            errs.append(invalid(f"{p}.operation", op, "must be `Apply` or `Update`"))
        fields_type = e.get("fieldsType") or ""
        if fields_type and fields_type != "FieldsV1":
            errs.append(invalid(f"{p}.fieldsType", fields_type, "must be `FieldsV1`"))
        errs.extend(validate_field_manager(e.get("manager") or "", f"{p}.manager"))
        if _byte_len(e.get("subresource") or "") > MAX_SUBRESOURCE_NAME_LENGTH:
            errs.append(too_long(f"{p}.subresource", "", MAX_SUBRESOURCE_NAME_LENGTH))
    return errs


# ---------------------------------------------------------------------------------------
# ObjectMeta on create and on update
# ---------------------------------------------------------------------------------------

def validate_object_meta(meta: Mapping[str, Any], *, namespaced: bool,
                         name_fn: NameFunc = name_is_dns_subdomain,
                         path: str = "metadata") -> list[FieldError]:
    """``ValidateObjectMetaAccessor`` on a wire-form (camelCase) metadata dict.

    ``name_fn(name, prefix)`` validates ``generateName`` (prefix=True) and ``name``. The
    generic registry of k8s.io/apiserver calls this with :func:`validate_path_segment_name`
    after the strategy's own validation; strategies use a DNS rule (the default here).
    """
    errs: list[FieldError] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        errs.extend(invalid(f"{path}.generateName", generate_name, m) for m in name_fn(generate_name, True))
    name = meta.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs.extend(invalid(f"{path}.name", name, m) for m in name_fn(name, False))

    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs.extend(invalid(f"{path}.namespace", namespace, m) for m in name_is_dns_label(namespace, False))
    elif namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))

    generation = meta.get("generation") or 0
    if generation < 0:
        errs.append(invalid(f"{path}.generation", generation, IS_NEGATIVE))
    errs.extend(validate_labels(meta.get("labels") or {}, f"{path}.labels"))
    errs.extend(validate_annotations(meta.get("annotations") or {}, f"{path}.annotations"))
    errs.extend(validate_owner_references(meta.get("ownerReferences") or [], f"{path}.ownerReferences"))
    errs.extend(validate_finalizers(meta.get("finalizers") or [], f"{path}.finalizers"))
    errs.extend(validate_managed_fields(meta.get("managedFields") or [], f"{path}.managedFields"))
    return errs


def validate_immutable_field(new: Any, old: Any, path: str) -> list[FieldError]:
    """``ValidateImmutableField`` (``None`` stands for an unset field)."""
    return [] if new == old else [invalid(path, new, FIELD_IMMUTABLE)]


def validate_object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                path: str = "metadata") -> list[FieldError]:
    """``ValidateObjectMetaAccessorUpdate`` on wire-form metadata dicts.

    As kube's ``rest.BeforeUpdate``, call it after :func:`validate_object_meta` on ``new``
    and after copying the old ``generation``/``uid``/``creationTimestamp``/
    ``deletionTimestamp``/``deletionGracePeriodSeconds`` onto ``new`` where kube does so.
    """
    errs: list[FieldError] = []
    if old.get("deletionTimestamp"):
        old_finalizers = set(old.get("finalizers") or [])
        extra = sorted(set(new.get("finalizers") or []) - old_finalizers)
        if extra:
            listed = ", ".join(go_quote(f) for f in extra)
            errs.append(forbidden(f"{path}.finalizers",
                                  "no new finalizers can be added if the object is being deleted, "
                                  f"found new finalizers []string{{{listed}}}"))
    resource_version = new.get("resourceVersion") or ""
    if not resource_version:
        errs.append(invalid(f"{path}.resourceVersion", resource_version, "must be specified for an update"))
    new_generation = new.get("generation") or 0
    if new_generation < (old.get("generation") or 0):
        errs.append(invalid(f"{path}.generation", new_generation, "must not be decremented"))

    for key in ("name", "namespace", "uid"):
        errs.extend(validate_immutable_field(new.get(key) or "", old.get(key) or "", f"{path}.{key}"))
    for key in ("creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        errs.extend(validate_immutable_field(new.get(key), old.get(key), f"{path}.{key}"))

    errs.extend(validate_labels(new.get("labels") or {}, f"{path}.labels"))
    errs.extend(validate_annotations(new.get("annotations") or {}, f"{path}.annotations"))
    errs.extend(validate_owner_references(new.get("ownerReferences") or [], f"{path}.ownerReferences"))
    errs.extend(validate_managed_fields(new.get("managedFields") or [], f"{path}.managedFields"))
    return errs
