# ParetoNAS GPU worker image: one container per GPU, stateless; all state lives in PostgreSQL.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY models ./models
COPY search ./search
COPY service ./service
COPY alembic ./alembic

# torch==2.13.0 (pinned in pyproject.toml) from PyPI is the CUDA build on Linux x86-64.
RUN pip install . && useradd --create-home --uid 10001 paretonas

USER 10001
# SIGTERM lets the worker finish or release its trial; give it time to do so.
STOPSIGNAL SIGTERM
CMD ["paretonas", "worker", "--device", "cuda:0"]
