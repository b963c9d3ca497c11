# osprey container image: the static binary from `make build`, nothing else.
# Built FROM scratch (no base image to pull: works air-gapped); `make image`
# builds the binary first and tags osprey:latest and osprey:<version>.
#
#   podman run -d -p 8080:8080 -v osprey-data:/data osprey:latest
#
# Ports: 8080 HTTP API (storage API, cluster routes, /metrics), 8081 Raft.
# Settings: OSPREY_<NAME> environment variables (see `osprey server -h`).
FROM scratch
COPY bin/osprey /osprey
# CA certificates from the build host, for TLS to S3/OSS/COS backends.
COPY build/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV OSPREY_DATA_DIR=/data \
    OSPREY_HTTP_ADDR=0.0.0.0:8080 \
    OSPREY_RAFT_ADDR=0.0.0.0:8081
# Non-root; /data must be writable by this uid (a named volume is).
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/osprey", "health"]
ENTRYPOINT ["/osprey"]
CMD ["server"]
