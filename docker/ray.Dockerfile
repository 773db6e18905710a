# ParetoNAS on a Ray cluster (KubeRay or `ray start`): ONE image for the head, the GPU worker nodes
# and the driver (`paretonas worker --ray auto`). Ray's own GPU image, same Ray version as the
# `ray` extra, with ParetoNAS installed so every Ray worker process can import the trial task.
FROM rayproject/ray:2.60.0-py311-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /home/ray/paretonas
COPY --chown=ray:users pyproject.toml README.md alembic.ini ./
COPY --chown=ray:users models ./models
COPY --chown=ray:users search ./search
COPY --chown=ray:users service ./service
COPY --chown=ray:users alembic ./alembic

# torch==2.13.0 (pinned in pyproject.toml) from PyPI is the CUDA build on Linux x86-64; the ray
# extra's range holds the image's Ray 2.60.0, so pip keeps it.
# hadolint ignore=DL3013
RUN pip install ".[ray]"

# KubeRay runs `ray start` itself; the driver is started as a Ray job (see the README):
#   ray job submit --no-wait --submission-id paretonas-driver -- paretonas worker --ray auto
# SIGTERM (`ray job stop paretonas-driver`) releases the trials the driver holds.
STOPSIGNAL SIGTERM
