# syntax=docker/dockerfile:1
#
# The verifier service (and its admin commands) as a container image.
#
#   docker build -t insurance-qr-verifier .
#   docker run -p 8080:8080 \
#     -v /etc/verifier:/etc/verifier:ro \
#     -e VERIFIER_STORE=redis://redis:6379/0 \
#     -e VERIFIER_TRUST_LIST=/etc/verifier/trust.paseto \
#     -e VERIFIER_ROOT_KEY=/etc/verifier/root.public \
#     insurance-qr-verifier
#   docker run --rm -e VERIFIER_STORE=redis://redis:6379/0 insurance-qr-verifier registry get h-0001
#
# Mount only what the service reads (the signed trust list and the root PUBLIC key), never a
# folder that also holds root.secret or an issuer's secret key.
#
# Settings (environment; `verifier serve --help` has the flags, which take precedence):
#   VERIFIER_STORE               redis://host:port/db, rediss://… for TLS (default
#                                redis://127.0.0.1:6379/0, which is nothing inside a container)
#   VERIFIER_TRUST_LIST          path of the signed trust list (required; mount it read-only)
#   VERIFIER_ROOT_KEY            path of the root public key (required)
#   VERIFIER_POLICY              benefit policy file (.json or .toml); empty = built-in table
#   VERIFIER_CONFIG              TOML config file with the same settings, lower case, no prefix
#   VERIFIER_LISTEN              HOST:PORT; the CMD below passes --listen 0.0.0.0:8080 instead
#   VERIFIER_WORKERS             processes sharing the port (default 1)
#   VERIFIER_STORE_DEADLINE_MS   per store call before answering 503 (default 50)
#   VERIFIER_ALLOW_EVICTION      true to run on a Redis that may evict nonces (unsafe)
#   VERIFIER_AUTH_CACHE_SECONDS  scanner/institution cache; revocations take this long (default 2)
#   VERIFIER_MAX_BODY_BYTES      /v1/verify body limit (default 8192)
#   VERIFIER_MAX_BATCH_BYTES     /v1/verify/batch body limit (default 1048576)
#   VERIFIER_TRUST_POLL_SECONDS  how often the trust list file is checked for changes (default 2)
#   VERIFIER_EXP_LEEWAY, VERIFIER_FUTURE_LEEWAY, VERIFIER_MAX_LIFETIME   time rules (30s, 5m)
#   VERIFIER_LOG_LEVEL           debug | info | warning | error (default info)
#   VERIFIER_LOG_FORMAT          text | json (one object per line, for a log shipper)
#   VERIFIER_ACCESS_LOG          true: one line per verdict (institution, scanner, reason, latency)
#   VERIFIER_REDIS_CA_FILE       rediss://: CA bundle (PEM) that signed Redis's certificate
#   VERIFIER_REDIS_CERT_FILE, VERIFIER_REDIS_KEY_FILE   rediss://: client certificate and key
#   A Redis password goes in the URL: redis://:PASSWORD@host:6379/0 (ACL user: USER:PASSWORD@)

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: build the wheel, install it and its dependencies into /opt/venv ----------------
# The wheel without extras: only what `verifier serve` needs (no qrcode, no matplotlib).
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY verifier ./verifier
COPY bench ./bench
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/*.whl

# --- runtime: the same base, the venv only, not root ------------------------------------------
# Same base image as the builder, so the venv's interpreter links stay valid.
FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin verifier
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER verifier
EXPOSE 8080
# Liveness only (/readyz also checks Redis and the trust list). The slim image has no curl.
# Change the URL here if you override --listen.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["verifier"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
