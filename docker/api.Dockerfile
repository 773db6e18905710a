# ParetoNAS API image: the REST API, the scheduler and migrations. CPU-only torch (the API never trains).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY models ./models
COPY search ./search
COPY service ./service
COPY alembic ./alembic

# torch==2.13.0 is pinned in pyproject.toml; the CPU index keeps the image small.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu . \
    && useradd --create-home --uid 10001 paretonas

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["paretonas", "serve", "--host", "0.0.0.0", "--port", "8000"]
