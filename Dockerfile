# One image for every Journeyman process: `journeyman api`, `journeyman worker`, `journeyman migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Installed into site-packages, the package cannot find the templates beside its source.
    JOURNEYMAN_TEMPLATES_DIR=/app/templates \
    JOURNEYMAN_DATA_DIR=/app/data

WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY journeyman ./journeyman
COPY persistence ./persistence
COPY templates ./templates
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --no-create-home journeyman \
    && mkdir -p /app/data \
    && chown journeyman /app/data

USER journeyman
EXPOSE 8000
CMD ["journeyman", "api", "--host", "0.0.0.0", "--port", "8000"]
