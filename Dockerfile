# alphatrade-lab: the live engine and the dashboard service in one image.
#
#   docker build -t alphatrade-lab .                                  (deploy extra: psycopg, redis)
#   docker build --build-arg EXTRAS=deploy,live -t alphatrade-lab .   (+ ccxt for crypto exchanges)
#
# Stage 1 builds the project's wheel and installs it, with constraints.txt's pins, into a
# virtual environment; stage 2 copies only that environment onto a slim Python image (no
# compilers, no pip cache, no sources) and runs as an unprivileged user. ENTRYPOINT is the
# `alphatrade-lab` command; the default CMD serves the dashboard (docker-compose.yml runs
# `live --config /app/deploy/live.toml` for the engine).
#
# ccxt (the `live` extra) is left out by default: the paper broker and Alpaca need only
# httpx, while ccxt is 74 MB of exchange code plus some twenty packages (aiohttp,
# cryptography, coincurve, uvloop, ...) that only crypto exchanges use.

# The same Python in both stages (the environment's interpreter links to /usr/local/bin):
# the full image builds (compilers at hand should a dependency lack a wheel), the slim one runs.
ARG BUILD_IMAGE=python:3.11.13-bookworm
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${BUILD_IMAGE} AS build
ARG EXTRAS=deploy
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY alphatrade_lab ./alphatrade_lab
COPY data/sample_bars.parquet ./data/sample_bars.parquet
# The wheel (hatchling, fetched by pip's isolated build), then the environment from it.
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint constraints.txt \
        "$(ls /dist/alphatrade_lab-*.whl)[${EXTRAS}]"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="alphatrade-lab" \
      org.opencontainers.image.description="alphatrade_lab live engine and dashboard service" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 atl \
    && useradd --system --uid 10001 --gid atl --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin atl \
    && mkdir -p /app/models /app/data \
    && chown atl:atl /app/data
COPY --from=build /opt/venv /opt/venv
COPY deploy/live.toml /app/deploy/live.toml
# Caches go to /tmp so that the container may run with a read-only root file system.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    MPLCONFIGDIR=/tmp/matplotlib \
    TRADING_MODE=paper
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# /api/health is open without the token (the service's only unauthenticated route).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]
ENTRYPOINT ["alphatrade-lab"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
