# syntax=docker/dockerfile:1
# Parley's production image: built in one stage, run from a small one as a
# non-root user. `docker compose up` builds it (see compose.yaml).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin parley \
 && strip target/release/parley

FROM debian:bookworm-slim
# curl: the health check; ca-certificates: TLS to managed MySQL/Elasticsearch.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/parley parley
COPY --from=build /src/target/release/parley /usr/local/bin/parley
USER parley
WORKDIR /var/lib/parley
ENV HOST=0.0.0.0 \
    PORT=8000 \
    PARLEY_DATA_DIR=/var/lib/parley
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["parley"]
