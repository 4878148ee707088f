# Debian's Prometheus for the compose stack's monitoring profile where the official
# prom/prometheus image cannot be pulled; same entry point and data folder as that image.
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && mkdir -p /prometheus \
    && chown prometheus:prometheus /prometheus
# The package's own user, whose id Debian assigns at install time.
# hadolint ignore=DL3066
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
