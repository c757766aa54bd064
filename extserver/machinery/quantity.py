"""``resource.Quantity`` as k8s.io/apimachinery defines it (parse, canonical form, arithmetic).

PLACEHOLDER API — the metrics helper implements it; hand-written because the canonical string
must match Go's ``Quantity.String()`` exactly.

    Quantity.parse("100m") -> Quantity; str(q) -> canonical string ("100m", "1Gi", "1500m")
    Quantity.from_milli(1500, DECIMAL_SI); Quantity.from_int(3, BINARY_SI)
    Quantity.from_float(0.25, DECIMAL_SI)  # as resource.NewQuantity/NewMilliQuantity + float path
    q.milli_value() -> int; q.value() -> int (rounded up as Go's Value()); q.as_float()
    q + q2, q - q2, comparisons, -q
"""
from __future__ import annotations

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"


class Quantity:  # replaced by the full implementation
    pass
