# syntax=docker/dockerfile:1

# One image serves every role of PAF Core Agent. The command picks the role:
#   API:        uvicorn api.app:app --host 0.0.0.0 --port 8000 (the default)
#   worker:     python temporal-worker.py
#   migrations: alembic upgrade head
# There is no HEALTHCHECK here because only the API role listens on a port.
# docker-compose.yml sets a healthcheck on the api service instead.

# Both stages must use the same base image, because the virtual environment
# copied into the runtime stage links to the base image's Python in /usr/local/bin.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /app

# The dependencies are installed before the source is copied, so a change to
# the code reuses this layer.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

COPY workflows/ workflows/
COPY activities/ activities/
COPY api/ api/
COPY db/ db/
COPY llm/ llm/
COPY cli/ cli/
COPY devstack/ devstack/
COPY settings/ settings/
COPY temporal-worker.py alembic.ini ./

# This second sync installs the project itself as an editable package that
# points at /app, which also puts the `paf` command on the PATH.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev


FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 paf \
    && useradd --system --uid 10001 --gid paf --create-home --home-dir /home/paf \
        --shell /usr/sbin/nologin paf

WORKDIR /app

# The files stay owned by root, so the service user can read the code but not change it.
COPY --from=build /app /app

# A numeric user lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001

EXPOSE 8000

CMD ["uvicorn", "api.app:app", "--host", "0.0.0.0", "--port", "8000"]
