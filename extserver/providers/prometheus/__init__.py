"""A Prometheus adapter on the metrics provider framework: prometheus-adapter's configuration
file served as custom, external and resource metrics (docs/prometheus-adapter.md).

``config`` reads the file (strictly, as upstream); ``template*`` is the Go text/template subset
of its templates; ``client`` talks to Prometheus's HTTP API; ``naming`` turns a rule and a
request into PromQL; ``discovery`` relists the series; ``provider`` and ``resource`` are the
providers; ``objects`` lists the Kubernetes objects a request is about; ``adapter`` assembles
it all from the command line."""
