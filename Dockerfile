# Multi-stage build: a static binary on a distroless, non-root base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY webhook/ webhook/
COPY mapping/ mapping/
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/oidc-authenticator ./cmd/oidc-authenticator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/oidc-authenticator /usr/local/bin/oidc-authenticator
USER 65532:65532
EXPOSE 21362
ENTRYPOINT ["/usr/local/bin/oidc-authenticator"]
CMD ["server", "--config", "/etc/oidc-authenticator/config.yaml"]
