# The operator image: kopf, the Kubernetes client and elastrain's models; no torch, no ray.
# Build it with `make images` (hack/images/build-images.sh), or by hand from the repo root:
#
#   docker build -t elastrain/operator:0.1.0 .
#
# BASE is any Debian-like image with python3 (>= 3.11) and its venv module: the default for real
# builds, or the local Debian base `make images` makes with mmdebstrap where no registry is reachable.
# Runs as uid 10001 (the chart's podSecurityContext), on a read-only root filesystem.
# Pin BASE by digest (python:3.12.8-slim-bookworm@sha256:...) at release.
ARG BASE=python:3.12.8-slim-bookworm

# Two build stages, so that a source change does not reinstall the dependencies. `deps` sees pyproject.toml
# only: the venv with every dependency of .[operator] (resolved by requirements.py), no elastrain yet, and no
# pip (a separate tool venv installs into it). `project` adds elastrain with --no-deps and stages its files.
FROM ${BASE} AS deps
# PIP_CERT: a CA bundle for pip (build-images.sh mounts the host's). A wheel directory mounted at /wheels
# (podman build -v; build-images.sh mounts one kept on the host) is filled once and installed from, so
# rebuilds do not download again.
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY hack/images/requirements.py /usr/local/lib/elastrain-images/
RUN python3 /usr/local/lib/elastrain-images/requirements.py pyproject.toml operator > /tmp/requirements.txt \
    && python3 -m venv /opt/build-tools \
    && python3 -m venv --without-pip /opt/elastrain \
    && if [ -d /wheels ]; then \
        /opt/build-tools/bin/pip download --dest /wheels "setuptools>=75" wheel -r /tmp/requirements.txt \
        && /opt/build-tools/bin/pip download --dest /wheels "cyclonedx-bom==7.5.0" \
        && export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; \
    else export PIP_NO_CACHE_DIR=1; fi \
    && /opt/build-tools/bin/pip --python /opt/elastrain/bin/python install -r /tmp/requirements.txt \
    && /opt/build-tools/bin/pip install "cyclonedx-bom==7.5.0" \
    && rm /tmp/requirements.txt

FROM deps AS project
# The distribution also packages the trainer's config model (the operator validates it) and the dev tooling.
COPY README.md ./
COPY operator/ operator/
COPY trainer_image/ trainer_image/
COPY hack/elastrain_dev/ hack/elastrain_dev/
COPY hack/images/install-project.sh hack/images/sbom.sh /usr/local/lib/elastrain-images/
RUN if [ -d /wheels ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; else export PIP_NO_CACHE_DIR=1; fi \
    && sh /usr/local/lib/elastrain-images/install-project.sh /opt/elastrain /opt/build-tools /opt/elastrain-project

FROM ${BASE}
# Debian's base images have no user 10001; take that uid (the chart runs the operator as 10001:10001).
RUN groupadd --gid 10001 elastrain \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin elastrain
# The dependencies first: this layer changes only with pyproject.toml. Then elastrain's own files.
COPY --from=deps /opt/elastrain /opt/elastrain
COPY --from=project /opt/elastrain-project/ /opt/elastrain/
ENV PATH=/opt/elastrain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="elastrain operator" \
      dev.elastrain.sbom=/opt/elastrain/sbom.cdx.json \
      dev.elastrain.freeze=/opt/elastrain/requirements.freeze.txt
USER 10001:10001
# 8080: Prometheus /metrics; 8081: kopf's /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["elastrain-operator"]
