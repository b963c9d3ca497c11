# MinIO for compose.yaml, built FROM scratch (no registry needed) from a
# statically linked minio binary in the build context. `make minio-image`
# prepares the context (build/minio/minio, from scripts/minio.sh, rebuilt
# with CGO_ENABLED=0 when that one is dynamically linked) and tags
# osprey-minio:latest.
FROM scratch
COPY minio /minio
# MinIO writes its config under $HOME when it has no other place.
ENV HOME=/data \
    MINIO_BROWSER=off
USER 65532:65532
VOLUME ["/data"]
EXPOSE 9000
ENTRYPOINT ["/minio"]
CMD ["server", "/data", "--address", ":9000"]
