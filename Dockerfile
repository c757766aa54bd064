# syntax=docker/dockerfile:1
#
# extserver container image. Build it with scripts/build-image.sh (docs/deploy.md), which
# tags it <registry>/extserver:<version from pyproject.toml>, the chart's appVersion:
#   scripts/build-image.sh --registry ghcr.io/you            # docker or podman
# or by hand:
#   docker build -t ghcr.io/you/extserver:0.1.0 .
#
# BASE_IMAGE must provide python3 with the venv module (Debian: python3-venv). Without a
# registry, scripts/debian-base-image.sh makes such a base with debootstrap and
# scripts/build-image.sh --offline installs the wheels it built on the host (wheelhouse/),
# never touching an index.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the package and its dependencies ---------------------------
FROM ${BASE_IMAGE} AS build
# true: install only from wheelhouse/ (--no-index), with no compiler and no apt.
ARG OFFLINE=false
# lets scripts/build-image.sh remove this stage's image once the build is done
LABEL org.extserver.stage=build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md ./
COPY extserver ./extserver
# Online, compilers are there for a dependency without a wheel for this platform; they stay
# in this stage, never in the final image.
RUN python3 -m venv /opt/extserver \
 && if [ "$OFFLINE" = "true" ]; then \
      /opt/extserver/bin/pip install --no-index --find-links /wheelhouse extserver; \
    else \
      apt-get update && apt-get install -y --no-install-recommends build-essential \
      && /opt/extserver/bin/pip install --find-links /wheelhouse . ; \
    fi \
 && /opt/extserver/bin/pip check \
 && /opt/extserver/bin/python -m compileall -q /opt/extserver/lib \
 && /opt/extserver/bin/extserver --help >/dev/null

# --- runtime: the virtualenv only, as a non-root user ------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="extserver" \
      org.opencontainers.image.description="Kubernetes aggregated API server in Python" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Bytecode is compiled at build time: the root filesystem is read-only at run time.
ENV PATH=/opt/extserver/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/extserver
# The only writable paths at run time are the chart's volumes: /var/lib/extserver (data),
# /var/run/extserver/certs (tls.type=server) and /tmp.
RUN groupadd --system --gid 10001 extserver \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/extserver --shell /usr/sbin/nologin extserver \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/extserver /var/run/extserver/certs
COPY --from=build /opt/extserver /opt/extserver
USER 10001:10001
WORKDIR /var/lib/extserver
EXPOSE 8443
# The server is PID 1: it installs its own SIGTERM/SIGINT handlers (the kernel ignores
# signals without a handler for PID 1) and starts no child processes to reap.
STOPSIGNAL SIGTERM
ENTRYPOINT ["extserver"]
CMD ["serve"]
