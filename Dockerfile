# One image for all four TokenHub services. The default command runs the gateway; docker-compose.yml
# overrides it for the issuer, registry and sweeper (`python -m issuer` etc.) and for `tokenhub migrate`.
# Health checks live in docker-compose.yml, not here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Runtime dependencies only (no test extras). The sources are removed after the install, so the
# services import the installed package and nothing else.
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY gateway ./gateway
COPY issuer ./issuer
COPY registry ./registry
COPY sweeper ./sweeper
COPY tokenhub ./tokenhub
RUN pip install --no-cache-dir . \
    && rm -rf /src

RUN groupadd --system --gid 10001 tokenhub \
    && useradd --system --uid 10001 --gid tokenhub --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tokenhub
WORKDIR /app
USER 10001:10001

# gateway, issuer, registry, sweeper (only the gateway is published by docker-compose.yml).
EXPOSE 8080 8081 8082 8083

CMD ["python", "-m", "gateway"]
