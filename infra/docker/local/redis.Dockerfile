# Debian's redis-server for the compose stack where the official redis image cannot be pulled.
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && mkdir -p /data \
    && chown redis:redis /data
# The package's own user, whose id Debian assigns at install time.
# hadolint ignore=DL3066
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]
