# oidc-authenticator: build, test and demo. Everything runs on a machine with Go and Debian's apt.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin
DEX      := $(BIN)/dex
APISERVER:= $(BIN)/kube-apiserver
K8S_VERSION := v1.32.13
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=32
# kubectl from PATH when there is one, else built from the same Kubernetes release.
KUBECTL  ?= $(shell command -v kubectl 2>/dev/null || echo $(CURDIR)/$(BIN)/kubectl)

.PHONY: all build test dex demo lint fuzz bench e2e etcd kube-apiserver kubectl clean

all: build

## build: the oidc-authenticator binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/oidc-authenticator ./cmd/oidc-authenticator

## dex: the Dex OIDC provider used by the demo and the integration tests, built in its own module
dex: $(DEX)
$(DEX): test/tools/dex/go.mod test/tools/dex/go.sum
	cd test/tools/dex && CGO_ENABLED=1 $(GO) build -o $(CURDIR)/$(DEX) github.com/dexidp/dex/cmd/dex

## lint: gofmt and go vet (of the module, and of test/reference and test/bench, modules of their own)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd test/reference && $(GO) vet ./...
	cd test/bench && $(GO) vet ./...

## test: every test that needs no Kubernetes cluster (unit tests and integration tests against a real Dex),
## then the comparison with kube-apiserver's own JWT authenticator (test/reference, its own module)
test: lint $(DEX)
	DEX_BIN=$(CURDIR)/$(DEX) $(GO) test -race -count=1 ./...
	cd test/reference && $(GO) test -count=1 ./...

## demo: Dex + the webhook + TokenReviews, narrated, then everything stopped
demo: build $(DEX)
	DEX_BIN=$(CURDIR)/$(DEX) $(GO) run ./test/demo

## kube-apiserver: built from the Go module proxy in its own module (only `go build`; no tidy)
kube-apiserver: $(APISERVER)
$(APISERVER): test/tools/kube-apiserver/go.mod test/tools/kube-apiserver/go.sum
	cd test/tools/kube-apiserver && $(GO) build -ldflags '$(K8S_LDFLAGS)' -o $(CURDIR)/$(APISERVER) k8s.io/kubernetes/cmd/kube-apiserver

kubectl:
	@[ -x "$(KUBECTL)" ] || { cd test/tools/kube-apiserver && $(GO) build -ldflags '$(K8S_LDFLAGS)' -o $(CURDIR)/$(BIN)/kubectl k8s.io/kubernetes/cmd/kubectl; }

## etcd: Debian's etcd-server when no etcd is installed
etcd:
	@command -v etcd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }

## e2e: kubectl -> kube-apiserver -> oidc-authenticator -> Dex, with etcd, for webhook versions v1 and v1beta1
e2e: build $(DEX) $(APISERVER) etcd kubectl
	DEX_BIN=$(CURDIR)/$(DEX) KUBECTL_BIN=$(KUBECTL) $(GO) test -tags e2e -count=1 -v -timeout 25m ./test/e2e

## fuzz: run each fuzz target for a bounded time: the TokenReview decoder, the JWT pre-parser, our verdicts against go-oidc's, the mapping parsers
FUZZTIME ?= 20s
FUZZ_TARGETS := FuzzDecodeReview:./webhook/ FuzzParseUnverified:./webhook/authn/ FuzzAcceptsWhatGoOIDCAccepts:./webhook/issuer/ FuzzParse:./mapping/ FuzzParseManifest:./mapping/
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done

## bench: oidc-authenticator beside the ceiling and kube-apiserver's own authenticator (docs/performance.md)
BENCH_FLAGS ?=
bench: build
	cd test/bench && $(GO) build -o $(CURDIR)/$(BIN)/bench .
	$(BIN)/bench -authenticator $(BIN)/oidc-authenticator $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)
