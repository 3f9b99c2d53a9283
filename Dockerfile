# syntax=docker/dockerfile:1
# One image for every RadTriage process: the command picks it (web, worker,
# beat, listener, migrate, manage ...), as `./run COMMAND` does; see compose.yaml.
#   docker build -t radtriage .                                  # CPU build
#   docker build -t radtriage-gpu --build-arg RADTRIAGE_INSTALL=gpu .
# The GPU build carries ONNX Runtime's CUDA 13 and cuDNN 9 wheels (about 1.5 GB
# more) and needs the NVIDIA container toolkit on the host.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG RADTRIAGE_INSTALL=cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    RADTRIAGE_VENV=/opt/radtriage/venv
WORKDIR /app
# Only the lock and the script that installs it: code changes keep this layer.
COPY run requirements*.txt ./
RUN ./run install "${RADTRIAGE_INSTALL}"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="RadTriage" \
      org.opencontainers.image.description="Radiology worklist triage" \
      org.opencontainers.image.licenses="Apache-2.0"
# A home of its own: ONNX Runtime keeps a small file there.
RUN groupadd --system --gid 10001 radtriage \
    && useradd --system --uid 10001 --gid radtriage --home-dir /home/radtriage \
       --create-home --shell /usr/sbin/nologin radtriage \
    && mkdir -p /var/lib/radtriage/var /var/lib/radtriage/dicom \
    && chown -R radtriage:radtriage /var/lib/radtriage
COPY --from=build /opt/radtriage/venv /opt/radtriage/venv
WORKDIR /app
COPY . .
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RADTRIAGE_VENV=/opt/radtriage/venv \
    RADTRIAGE_VAR_DIR=/var/lib/radtriage/var \
    RADTRIAGE_STORAGE_DIR=/var/lib/radtriage/dicom \
    RADTRIAGE_WEB_HOST=0.0.0.0 \
    RADTRIAGE_DICOM_HOST=0.0.0.0 \
    RADTRIAGE_HL7_HOST=0.0.0.0 \
    RADTRIAGE_PROCESS=web
# The scheduler's state and the received DICOM files outlive the container; the
# storage volume must be the same one for the listener, web and workers.
VOLUME ["/var/lib/radtriage/var", "/var/lib/radtriage/dicom"]
# Numeric, so that runAsNonRoot-style checks can tell it is not root.
USER 10001:10001
EXPOSE 8000 11112
# RADTRIAGE_PROCESS names the process to probe (compose sets a test per service).
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["sh", "-c", "exec /app/run manage healthcheck --process \"$RADTRIAGE_PROCESS\""]
ENTRYPOINT ["/app/run"]
CMD ["web"]
