# The image of the producer and writer services in docker-compose.yml (built once, by the producer service).
# Reproducible: the base image is pinned by digest (python:3.11-slim as docker-library/repo-info recorded it;
# docs/compose.md), and every Python package by version and sha256 (requirements-lock.txt, generated from
# requirements.txt; the refresh command is in docs/development.md), so a rebuild installs the same files.
FROM python:3.11-slim@sha256:d1e9ca7c4e78d1e8ecadb5d44bfc8e956e7a65b659a9950f569f243d72b326d0

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 loglake
WORKDIR /app

# dependencies first, in their own layer: rebuilt only when the lock file changes; --require-hashes
# refuses any file whose hash is not in the lock, --no-deps anything the lock does not name
COPY requirements-lock.txt .
RUN pip install --require-hashes --no-deps -r requirements-lock.txt

COPY loglake/ loglake/
COPY faking_data.py receive_faking_data.py ./
USER loglake
CMD ["python", "faking_data.py", "--help"]
