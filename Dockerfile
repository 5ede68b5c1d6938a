# Multi-stage build: a static binary on a distroless, non-root base. `make image` builds the same
# binary (same flags, same stamping: test/release checks that this file and the Makefile agree)
# and packs it without a Docker daemon. Pass the stamps as the Makefile computes them:
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BUILD_DATE=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY webhook/ webhook/
COPY mapping/ mapping/
ARG VERSION=dev
ARG REVISION=unknown
ARG BUILD_DATE=unknown
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION} -X main.buildDate=${BUILD_DATE}" \
      -o /out/oidc-authenticator ./cmd/oidc-authenticator

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title=oidc-authenticator \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.created=${BUILD_DATE} \
      org.opencontainers.image.source=https://github.com/oidc-authenticator/oidc-authenticator \
      org.opencontainers.image.licenses=Apache-2.0
COPY --from=build /out/oidc-authenticator /usr/local/bin/oidc-authenticator
USER 65532:65532
EXPOSE 21362
ENTRYPOINT ["/usr/local/bin/oidc-authenticator"]
CMD ["server", "--config", "/etc/oidc-authenticator/config.yaml"]
