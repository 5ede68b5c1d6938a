# oidc-authenticator: build, test and demo. Everything runs on a machine with Go and Debian's apt.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin
DEX      := $(BIN)/dex

.PHONY: all build test unit dex demo lint fuzz clean

all: build

## build: the oidc-authenticator binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/oidc-authenticator ./cmd/oidc-authenticator

## dex: the Dex OIDC provider used by the demo and the integration tests, built in its own module
dex: $(DEX)
$(DEX): test/tools/dex/go.mod test/tools/dex/go.sum
	cd test/tools/dex && CGO_ENABLED=1 $(GO) build -o $(CURDIR)/$(DEX) github.com/dexidp/dex/cmd/dex

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: every test that needs no Kubernetes cluster (unit tests and integration tests against a real Dex)
test: lint $(DEX)
	DEX_BIN=$(CURDIR)/$(DEX) $(GO) test -race -count=1 ./...

## demo: Dex + the webhook + TokenReviews, narrated, then everything stopped
demo: build $(DEX)
	DEX_BIN=$(CURDIR)/$(DEX) $(GO) run ./test/demo

## fuzz: run each fuzz target for a bounded time
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseUnverified$$' -fuzztime $(FUZZTIME) ./webhook/authn/

clean:
	rm -rf $(BIN)
