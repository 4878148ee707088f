# A MongoDB-compatible server (SecantusDB, the test suite's) for the compose stack where the
# official mongo image cannot be pulled; infra/setup builds it with the binary in the context.
FROM debian:bookworm-slim
COPY secantusd-rs /usr/local/bin/secantusd-rs
RUN useradd --system --uid 10002 --user-group mongodb \
    && mkdir -p /data/db \
    && chown mongodb:mongodb /data/db
USER 10002:10002
EXPOSE 27017
CMD ["secantusd-rs", "--host", "0.0.0.0", "--port", "27017", "--storage-path", "/data/db", "--log-file-max", "8MB"]
