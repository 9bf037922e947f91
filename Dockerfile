# syntax=docker/dockerfile:1
# Build: a static binary (pure-Go SQLite, no cgo).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/qiflow ./cmd/qiflow \
 && mkdir -p /out/data

# Run: distroless static (CA certificates and tzdata included), as non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/qiflow /usr/local/bin/qiflow
COPY --from=build --chown=65532:65532 /out/data /data
ENV QIFLOW_HTTP_ADDR=0.0.0.0:8080 \
    QIFLOW_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/qiflow"]
CMD ["serve"]
