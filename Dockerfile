# Two images from one file:
#   docker build --target api    -t tensorq-api .     (no TensorFlow)
#   docker build --target worker -t tensorq-worker .  (TensorFlow with CUDA)
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 tensorq
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tensorq tensorq
COPY api api
COPY worker worker
COPY db db
COPY migrations migrations
COPY ml ml
COPY bench bench

FROM base AS api
# The API never imports TensorFlow: install the project without its dependencies, then only what the API needs.
RUN pip install --no-deps . && pip install "flask>=3.1,<4" "pydantic>=2.7,<3" "pydantic-settings>=2.3,<3" \
    "celery[redis]>=5.5,<6" "sqlalchemy>=2.0,<3" "alembic>=1.13" "psycopg[binary]>=3.2" "click>=8.1" \
    "httpx>=0.27" "gunicorn>=22" "numpy>=1.26"
USER tensorq
EXPOSE 8000
CMD ["tensorq", "api", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
RUN pip install ".[gpu]"
USER tensorq
CMD ["tensorq", "worker"]
