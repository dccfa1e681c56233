# kubeplex — build, generate, test. `make test` is what CI runs (see .ci/run).

KUBE_VERSION       ?= 1.37.2
CONTROLLER_GEN_VER ?= v0.23.0
GOLANGCI_LINT_VER  ?= v2.15.0
HELM_VER           ?= v3.22.0

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VER)
GOLANGCI_LINT  ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VER)
HELM           ?= $(LOCALBIN)/helm-$(HELM_VER)
export HELM
ENVTEST_DIR    ?= $(LOCALBIN)/k8s/$(KUBE_VERSION)
NODE_BIN_DIR   ?= $(LOCALBIN)/node/$(KUBE_VERSION)
IMAGE_TAG      ?= 0.1.0
# Images are built from binaries compiled here, not from bin/ (shared between worktrees).
DIST           ?= $(CURDIR)/dist
# An already exported KUBEBUILDER_ASSETS wins over the assets built here.
KUBEBUILDER_ASSETS ?= $(ENVTEST_DIR)
export KUBEBUILDER_ASSETS

GOTEST_FLAGS ?= -count=1 -timeout=40m

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, RBAC and webhook manifests from markers.
	$(CONTROLLER_GEN) rbac:roleName=kubeplex-manager crd webhook paths="./api/..." paths="./controllers/..." paths="./internal/webhook/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@mkdir -p charts/kubeplex/crds charts/kubeplex/files
	cp config/crd/bases/*.yaml charts/kubeplex/crds/
	cp config/rbac/role.yaml charts/kubeplex/files/manager-role.yaml

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint with .golangci.yml.
	$(GOLANGCI_LINT) run ./...

.PHONY: tidy-check
tidy-check: ## Fail when go.mod or go.sum differ from what go mod tidy writes (also the nested test/otelcol module).
	@go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }
	@cd test/otelcol && go mod tidy -diff || { echo "test/otelcol/go.mod is not tidy: cd test/otelcol && go mod tidy" >&2; exit 1; }

.PHONY: test
test: manifests generate fmt vet tidy-check lint envtest $(HELM) ## Run every test: tidy and lint checks, unit, fuzz seeds, envtest, process-level, walking skeleton.
	go test $(GOTEST_FLAGS) ./...

.PHONY: test-reliability
test-reliability: ## Loss-accounting scenarios at full size (docs/reliability.md); make test runs the short ones.
	KUBEPLEX_RELIABILITY=long go test -count=1 -timeout=30m -v ./test/reliability/

.PHONY: soak
soak: ## Scenario 11: 100 apps × 3 drains for SOAK_DURATION (default 1h) with faults (not in CI; docs/reliability.md).
	KUBEPLEX_RELIABILITY=soak SOAK_DURATION=$${SOAK_DURATION:-1h} go test -count=1 -timeout=0 -v -run 'TestScenario11Soak$$' ./test/reliability/

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	hack/fuzz.sh $${FUZZTIME:-30s}

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl from the module proxy into bin/k8s (once).
	@if [ "$(KUBEBUILDER_ASSETS)" = "$(ENVTEST_DIR)" ]; then hack/envtest-assets.sh $(ENVTEST_DIR) >/dev/null; fi

.PHONY: bench
bench: ## Router vs rsyslog relay, loopback, fan-out, history memory, log sessions into docs/benchmarks.md.
	hack/bench/run.sh

.PHONY: bench-scale
bench-scale: envtest ## Routing table at 10,000-50,000 drains (render, shards, router apply), router replicas, into docs/scaling.md.
	go run ./hack/bench/scale -doc docs/scaling.md $(SCALE_ARGS)

.PHONY: bench-collector
bench-collector: ## Collector footprint (10,000 lines/s for 30 s) into docs/benchmarks.md.
	go run ./hack/bench/collector -doc docs/benchmarks.md

##@ Build

.PHONY: build
build: ## Build all binaries into bin/ (kubectl-kubeplex is the CLI as a kubectl plugin).
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/ ./cmd/...
	cp $(LOCALBIN)/kubeplex $(LOCALBIN)/kubectl-kubeplex

.PHONY: images
images: ## Image tarballs of manager, router, collector (kubeplex/NAME:IMAGE_TAG) and the node's pause and sample workers (plain and OpenTelemetry SDK) into dist/.
	@mkdir -p $(DIST)/bin/node
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o $(DIST)/bin/ ./cmd/manager ./cmd/router ./cmd/collector
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o $(DIST)/bin/node/ ./hack/node/pause ./test/node/worker ./test/node/otelworker
	go run ./hack/image -repo kubeplex -tag $(IMAGE_TAG) -out $(DIST) $(DIST)/bin/manager $(DIST)/bin/router $(DIST)/bin/collector
	go run ./hack/image -repo kubeplex-node -tag 1 -out $(DIST)/node $(DIST)/bin/node/pause $(DIST)/bin/node/worker $(DIST)/bin/node/otelworker

.PHONY: node-assets
node-assets: envtest ## Build kubelet, kube-scheduler, kube-controller-manager, kube-proxy and CoreDNS into bin/node (once).
	hack/node/assets.sh $(NODE_BIN_DIR) >/dev/null

.PHONY: test-e2e
test-e2e: node-assets images $(HELM) ## A real single node (hack/node): helm install kubeplex, run test/node, tear it all down.
	hack/node/e2e.sh

.PHONY: run
run: build envtest ## Run a local stack: API server, manager, router, a sample worker.
	go run ./hack/devstack

##@ Tools

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VER)
	mv $(LOCALBIN)/controller-gen $@

$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VER)
	mv $(LOCALBIN)/golangci-lint $@

$(HELM):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VER)
	mv $(LOCALBIN)/helm $@

.PHONY: help
help: ## Show targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-12s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
