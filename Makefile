# oidc-authenticator: build, test and demo. Everything runs on a machine with Go and Debian's apt.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The git revision and the build date (the commit's date, UTC, so that two builds of one commit
# are identical) are stamped beside the version; the Dockerfile passes the same three (test/release).
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.buildDate=$(BUILD_DATE)
BIN      := bin
DEX      := $(BIN)/dex
APISERVER:= $(BIN)/kube-apiserver
K8S_VERSION := v1.32.13
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=32
# kubectl from PATH when there is one, else built from the same Kubernetes release.
KUBECTL  ?= $(shell command -v kubectl 2>/dev/null || echo $(CURDIR)/$(BIN)/kubectl)

.PHONY: all build test dex demo lint fuzz bench bench-scale e2e soak etcd kube-apiserver kubectl clean

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
	cd test/tools/image && $(GO) vet ./...

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
	DEX_BIN=$(CURDIR)/$(DEX) KUBECTL_BIN=$(KUBECTL) $(GO) test -tags e2e -count=1 -v -timeout 25m -run '^TestE2E$$' ./test/e2e

## soak: the operations soak: logins through kube-apiserver at a steady rate while the config file,
## the webhook process, Dex, the mapping ConfigMap and the serving certificate change (docs/operations.md)
soak: build $(DEX) $(APISERVER) etcd kubectl
	DEX_BIN=$(CURDIR)/$(DEX) KUBECTL_BIN=$(KUBECTL) $(GO) test -tags e2e -count=1 -v -timeout 20m -run '^TestSoak$$' ./test/e2e

## fuzz: run each fuzz target for a bounded time: the TokenReview decoder, the JWT pre-parser, our verdicts against go-oidc's, the mapping parsers
FUZZTIME ?= 20s
FUZZ_TARGETS := FuzzDecodeReview:./webhook/ FuzzParseUnverified:./webhook/authn/ FuzzAcceptsWhatGoOIDCAccepts:./webhook/issuer/ FuzzParse:./mapping/ FuzzParseManifest:./mapping/ FuzzFastList:./mapping/ FuzzFastManifest:./mapping/ FuzzEncodePersisted:./mapping/
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

## bench-scale: how oidc-authenticator's cost grows with groups per token, mapping entries and
## cached identities, each a curve measured in one run (docs/performance.md, "Scale")
bench-scale: build
	cd test/bench && $(GO) build -o $(CURDIR)/$(BIN)/bench .
	$(BIN)/bench -scale -authenticator $(BIN)/oidc-authenticator $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)

# ---------------------------------------------------------------------------------------------
# Images, releases and the real node (issue 14). No Docker daemon and no registry: test/tools/image
# (a module of its own, on go-containerregistry) packs the static binary into an image tarball.

IMAGE_REPO ?= ghcr.io/oidc-authenticator/oidc-authenticator
IMAGE_TAG  ?= $(VERSION)
ARCH       ?= $(shell $(GO) env GOARCH)
IMAGE_TOOL := $(BIN)/image-tool
IMAGE_TAR  ?= $(BIN)/oidc-authenticator-$(IMAGE_TAG)-linux-$(ARCH).tar
PAUSE_TAR  := $(BIN)/pause-3.10.tar
DIST       := dist
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/arm64 windows/amd64

.PHONY: image pause-image image-tool release node-tools node-packages e2e-node

image-tool:
	cd test/tools/image && $(GO) build -o $(CURDIR)/$(IMAGE_TOOL) .

## image: the container image as a tarball (docker load / ctr images import / kind load image-archive);
## the binary is built exactly as `make build` builds it, for linux/$(ARCH)
image: image-tool
	GOOS=linux GOARCH=$(ARCH) CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-$(ARCH)/oidc-authenticator ./cmd/oidc-authenticator
	@$(IMAGE_TOOL) -binary $(BIN)/linux-$(ARCH)/oidc-authenticator -platform linux/$(ARCH) \
	  -ref $(IMAGE_REPO):$(IMAGE_TAG) -version $(VERSION) -revision $(REVISION) -created $(BUILD_DATE) \
	  -cmd server -cmd --config -cmd /etc/oidc-authenticator/config.yaml -o $(IMAGE_TAR)

## pause-image: the pod sandbox image of the e2e node (localhost/pause:3.10), so that it needs no registry
pause-image: image-tool
	cd test/tools/image && GOOS=linux GOARCH=$(ARCH) CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(CURDIR)/$(BIN)/linux-$(ARCH)/pause ./pause
	@$(IMAGE_TOOL) -binary $(BIN)/linux-$(ARCH)/pause -path /pause -platform linux/$(ARCH) -ref localhost/pause:3.10 \
	  -user 65535:65535 -ca-certificates '' -expose '' -version 3.10 -revision $(REVISION) -created $(BUILD_DATE) -o $(PAUSE_TAR)

## release: binaries for every platform, the linux images, the manifests pinned to this version, SHA256SUMS, in dist/
release: image-tool
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  echo "build $$os/$$arch"; \
	  GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/oidc-authenticator-$(VERSION)-$$os-$$arch$$ext ./cmd/oidc-authenticator; \
	done
	@set -e; for arch in amd64 arm64; do \
	  $(IMAGE_TOOL) -binary $(DIST)/oidc-authenticator-$(VERSION)-linux-$$arch -platform linux/$$arch \
	    -ref $(IMAGE_REPO):$(VERSION) -version $(VERSION) -revision $(REVISION) -created $(BUILD_DATE) \
	    -cmd server -cmd --config -cmd /etc/oidc-authenticator/config.yaml -o $(DIST)/oidc-authenticator-$(VERSION)-image-linux-$$arch.tar; \
	done
	mkdir -p $(DIST)/manifests && cp manifests/*.yaml $(DIST)/manifests/
	sed -i 's|^  newTag: .*|  newTag: $(VERSION)|' $(DIST)/manifests/kustomization.yaml
	tar -C $(DIST) -czf $(DIST)/oidc-authenticator-$(VERSION)-manifests.tar.gz manifests && rm -rf $(DIST)/manifests
	cd $(DIST) && sha256sum oidc-authenticator-* > SHA256SUMS && cat SHA256SUMS

## node-tools: kubelet, kube-controller-manager and kube-scheduler, from the same module and release as kube-apiserver
NODE_BINS := $(BIN)/kubelet $(BIN)/kube-controller-manager $(BIN)/kube-scheduler
node-tools: $(NODE_BINS)
$(NODE_BINS) &: test/tools/kube-apiserver/go.mod test/tools/kube-apiserver/go.sum
	cd test/tools/kube-apiserver && $(GO) build -ldflags '$(K8S_LDFLAGS)' -o $(CURDIR)/$(BIN)/ \
	  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler

## node-packages: containerd, runc and the CNI plugins from Debian's apt (and etcd), when missing
node-packages: etcd
	@command -v containerd >/dev/null && command -v runc >/dev/null && [ -x /usr/lib/cni/bridge ] || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc containernetworking-plugins >/dev/null; }

## e2e-node: a real node (containerd, kubelet, kube-controller-manager, kube-scheduler) running the DaemonSet
## from `kubectl apply -k manifests` with the image `make image` built; run as root
e2e-node: build $(DEX) $(APISERVER) kubectl node-tools node-packages
	$(MAKE) image IMAGE_TAG=e2e-node IMAGE_TAR=$(BIN)/e2e-node-image.tar
	$(MAKE) image IMAGE_TAG=e2e-node-2 VERSION=e2e-node-2 IMAGE_TAR=$(BIN)/e2e-node-image-2.tar
	$(MAKE) pause-image
	@$(IMAGE_TOOL) -binary $(APISERVER) -path /usr/local/bin/kube-apiserver -platform linux/$(ARCH) -ref localhost/kube-apiserver:$(K8S_VERSION) \
	  $$(ldd $(APISERVER) 2>/dev/null | grep -o '/[^ ]*' | sed 's/^/-add /') \
	  -user 0:0 -ca-certificates '' -expose '' -version $(K8S_VERSION) -revision $(K8S_VERSION) -created $(BUILD_DATE) -o $(BIN)/kube-apiserver-image.tar
	DEX_BIN=$(CURDIR)/$(DEX) KUBECTL_BIN=$(KUBECTL) PAUSE_TAR=$(CURDIR)/$(PAUSE_TAR) IMAGE_REPO=$(IMAGE_REPO) \
	  IMAGE_TAR=$(CURDIR)/$(BIN)/e2e-node-image.tar IMAGE2_TAR=$(CURDIR)/$(BIN)/e2e-node-image-2.tar \
	  APISERVER_IMAGE_TAR=$(CURDIR)/$(BIN)/kube-apiserver-image.tar APISERVER_IMAGE=localhost/kube-apiserver:$(K8S_VERSION) \
	  $(GO) test -tags e2enode -count=1 -v -timeout 25m -run TestNode ./test/e2e
