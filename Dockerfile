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
#                 ./plugins/NAME (the .dockerignore lets only gateway/, plugins/ and wheels/ in).
#   WHEELS        a directory inside the build context (default: wheels) whose *.whl files are
#                 installed too, e.g. a private resolver built with `pip wheel`; their
#                 dependencies come from the same directory first, then the index.
#   REPO_PLUGINS  which of the repository's plugins/*/ directories (those with a pyproject.toml)
#                 to install: "all" (default), "none", or space-separated directory names.
#   PYTHON_IMAGE  base image of both stages (default python:3.11-slim).
#
# A private resolver can also be added on top of a built image, without this build:
#   FROM registry.example.com/doku-gateway:0.1.0
#   USER 0
#   COPY acme_erp_resolver-1.4.2-py3-none-any.whl /tmp/
#   RUN pip install --no-cache-dir /tmp/acme_erp_resolver-1.4.2-py3-none-any.whl \
#    && rm /tmp/acme_erp_resolver-1.4.2-py3-none-any.whl
#   USER 10001:10001
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
# Only pyproject.toml, README.md, gateway/, plugins/ and wheels/ get here (see .dockerignore);
# plugins/ and wheels/ may be absent or empty.
COPY . .
ARG REPO_PLUGINS=all
ARG PLUGINS=""
ARG WHEELS=wheels
# $specs and $PLUGINS are split into words on purpose; versions are pinned by whoever sets PLUGINS
# or builds the wheels.
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
    links=""; \
    for wheel in "$WHEELS"/*.whl; do \
      if [ -f "$wheel" ]; then specs="$specs ./$wheel"; links="--find-links ./$WHEELS"; fi; \
    done; \
    set -f; \
    echo "installing: $specs $PLUGINS"; \
    pip install $links $specs $PLUGINS; \
    python -c "from importlib.metadata import entry_points as e; \
print('resolvers:', sorted(p.name for p in e(group='doku_gateway.resolvers')))"; \
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
