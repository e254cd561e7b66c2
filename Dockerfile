# The operator image: kopf, the Kubernetes client and elastrain's models; no torch, no ray.
#
#   docker build -t ghcr.io/elastrain/operator:0.1.0 .
#
# Runs as uid 10001 (the chart's podSecurityContext), on a read-only root filesystem.
# Base images are pinned by exact tag; pin by digest (python:3.12.8-slim-bookworm@sha256:...) at release.

FROM python:3.12.8-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The distribution also packages the trainer's config model (the operator validates it) and the dev tooling.
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY trainer_image/ trainer_image/
COPY hack/elastrain_dev/ hack/elastrain_dev/
RUN python -m venv /opt/elastrain \
    && /opt/elastrain/bin/pip install ".[operator]"

FROM python:3.12.8-slim-bookworm
RUN groupadd --gid 10001 elastrain \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin elastrain
COPY --from=build /opt/elastrain /opt/elastrain
ENV PATH=/opt/elastrain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# 8080: Prometheus /metrics; 8081: kopf's /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["elastrain-operator"]
