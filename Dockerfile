# syntax=docker/dockerfile:1
#
# extserver container image.
#   docker build -t ghcr.io/extserver/extserver:$(python -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])') .
# Tag scheme: ghcr.io/extserver/extserver:<version from pyproject.toml> (no "v"), the
# same value as the Helm chart's appVersion; see docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: compile wheels for the package and its dependencies --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only for dependencies without a wheel for this platform; never in the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY extserver ./extserver
RUN python -m venv /opt/extserver \
 && /opt/extserver/bin/pip install --upgrade pip \
 && /opt/extserver/bin/pip install . \
 && /opt/extserver/bin/pip check \
 && /opt/extserver/bin/extserver --help >/dev/null

# --- runtime: the virtualenv only, as a non-root user ------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="extserver" \
      org.opencontainers.image.description="Kubernetes aggregated API server in Python" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/extserver/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 extserver \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/extserver --shell /usr/sbin/nologin extserver \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/extserver /var/run/extserver/certs
COPY --from=build /opt/extserver /opt/extserver
USER 10001:10001
WORKDIR /var/lib/extserver
EXPOSE 8443
ENTRYPOINT ["extserver"]
CMD ["serve"]
