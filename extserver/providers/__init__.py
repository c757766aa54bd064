"""Computed, read-only APIs: objects produced on request by user code instead of storage.

``provider.py`` is the generic provider storage (any computed kind); ``metrics_api.py`` the
provider interfaces of the metrics APIs (``metrics.k8s.io``, ``custom.metrics.k8s.io``,
``external.metrics.k8s.io``), as custom-metrics-apiserver and metrics-server define them; the
sources (Python callables, Prometheus) live beside them."""
