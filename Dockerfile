# syntax=docker/dockerfile:1
# Build: a static, pure-Go binary (no cgo: SQLite is the pure-Go driver).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
# nomsgpack: Gin's MessagePack codec, which idbridge never speaks, stays
# out (6 MB; docs/PERFORMANCE.md, the binary's size).
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -tags nomsgpack \
      -ldflags "-s -w -X idbridge/app.Version=${VERSION} -X idbridge/app.Revision=${REVISION}" \
      -o /out/idbridge . \
 && mkdir -p /out/data

# Run: distroless static has CA certificates and tzdata, no shell, and runs
# as an unprivileged user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/idbridge /usr/local/bin/idbridge
COPY --from=build --chown=65532:65532 /out/data /data
ENV IDBRIDGE_DATA_DIR=/data \
    IDBRIDGE_ADDR=:8080
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/idbridge"]
CMD ["serve"]
