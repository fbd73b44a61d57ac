# syntax=docker/dockerfile:1
# doku-gateway: DOKU SNAP Direct Inquiry gateway (Starlette + uvicorn), as a non-root image.
#
#   docker build -t doku-gateway:0.1.0 .
#   docker build -t doku-gateway:0.1.0-acme \
#     --build-arg PLUGINS="acme-erp-resolver==1.4.2" --build-arg REPO_PLUGINS=none .
#
# Build arguments:
#   PLUGINS       extra pip requirement specs installed next to the gateway: resolver plugins from
#                 a package index, VCS URLs, or paths inside the build context such as
#                 ./plugins/NAME (the .dockerignore lets only gateway/ and plugins/ in).
#   REPO_PLUGINS  which of the repository's plugins/*/ directories (those with a pyproject.toml)
#                 to install: "all" (default), "none", or space-separated directory names.
#   PYTHON_IMAGE  base image of both stages (default python:3.11-slim).
#
# Run: the configuration is read from /etc/doku-gateway/config.toml (mount it; the Helm chart in
# helm/doku-gateway does), which must set [http] host = "0.0.0.0" to be reachable; keys and the
# client secret are best mounted as files under /etc/doku-gateway/secrets/ and referenced as
# file:/etc/doku-gateway/secrets/NAME. To try it without DOKU credentials:
#   docker run --rm -p 8080:8080 doku-gateway:0.1.0 serve --demo --demo-dir /tmp/demo --host 0.0.0.0

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv holding the gateway and its plugins --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/doku-gateway
ENV PATH=/opt/doku-gateway/bin:$PATH
WORKDIR /src
# Only pyproject.toml, README.md, gateway/ and plugins/ get here (see .dockerignore); plugins/
# may be absent or empty.
COPY . .
ARG REPO_PLUGINS=all
ARG PLUGINS=""
# $specs and $PLUGINS are split into words on purpose; versions are pinned by whoever sets PLUGINS.
# hadolint ignore=DL3013,SC2086
RUN set -eu; \
    specs="."; \
    case "$REPO_PLUGINS" in \
      ""|none) ;; \
      all) for dir in plugins/*/; do \
             if [ -f "${dir}pyproject.toml" ]; then specs="$specs ./${dir%/}"; fi; \
           done ;; \
      *) for name in $REPO_PLUGINS; do specs="$specs ./plugins/$name"; done ;; \
    esac; \
    set -f; \
    echo "installing: $specs $PLUGINS"; \
    pip install $specs $PLUGINS; \
    python -c "from gateway.resolvers.loader import available_resolvers as a; print('resolvers:', a())"; \
    doku-gateway --help > /dev/null

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="doku-gateway" \
      org.opencontainers.image.description="Merchant-side gateway for DOKU SNAP Direct Inquiry virtual accounts" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/doku-gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# uid/gid 10001: the Helm chart's runAsUser/runAsGroup/fsGroup use the same numbers.
RUN groupadd --system --gid 10001 doku-gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin doku-gateway \
 && install -d -m 0755 /etc/doku-gateway /etc/doku-gateway/secrets \
 && install -d -m 0750 -o 10001 -g 10001 /var/lib/doku-gateway
COPY --from=build /opt/doku-gateway /opt/doku-gateway
USER 10001:10001
# Writable by the gateway's user: relative paths (the payment journal's default directory, the
# demo's .demo) land here. The Helm chart mounts a volume on it.
WORKDIR /var/lib/doku-gateway
EXPOSE 8080
ENTRYPOINT ["doku-gateway"]
CMD ["serve", "--config", "/etc/doku-gateway/config.toml"]
