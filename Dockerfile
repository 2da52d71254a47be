# The image of the producer and writer services in docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 loglake
WORKDIR /app

# dependencies first, in their own layer: rebuilt only when requirements.txt changes
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY loglake/ loglake/
COPY faking_data.py receive_faking_data.py ./
USER loglake
CMD ["python", "faking_data.py", "--help"]
