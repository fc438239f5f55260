# modelgate — `make run` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
GO ?= go

# ONNX Runtime comes from the npm registry's onnxruntime-node package and
# nowhere else; the sha256 of the extracted library is pinned here.
ORT_VERSION := 1.30.0
ORT_SHA256  := ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ORT_LIB     := $(CURDIR)/.cache/onnxruntime-$(ORT_VERSION)/libonnxruntime.so.1
# A library of your own: make run MODELGATE_ORT_LIB=/path/libonnxruntime.so.1
ifeq ($(strip $(MODELGATE_ORT_LIB)),)
MODELGATE_ORT_LIB := $(ORT_LIB)
endif
export MODELGATE_ORT_LIB

DEMO_MODEL := $(CURDIR)/.cache/demo/fraud.onnx
DEMO_PROFILE := $(CURDIR)/.cache/demo/fraud.profile.json
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" when a -fuzztime duration expires
# (go.dev/issue/75804, fixed in 1.27; seen here on FuzzLogCodec and
# FuzzStatic, no input written). 100,000 inputs take 2-15 s per target here (60 s in all).
FUZZTIME   ?= 100000x
# Go minimizes every new interesting input for up to 60 s by default, and a
# worker minimizing runs no new inputs: FuzzBlock spent 8 of a 10 s run that
# way (13k inputs; capped at 200 tries, 104k).
FUZZMINIMIZE ?= 200x
FUZZ       = $(GO) test -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE)
BIN        := bin/modelgate

.PHONY: all run run-cluster build test test-unit test-race fuzz bench fmt vet ort demo-model demo clean

all: build

## ort: fetch ONNX Runtime's shared library once into .cache/ (checked by sha256)
ort: $(ORT_LIB)
$(ORT_LIB):
	scripts/fetch-ort.sh $@ $(ORT_VERSION) $(ORT_SHA256)

## build: the one binary, at bin/modelgate
build:
	$(GO) build -o $(BIN) ./cmd/modelgate

## demo-model: train the demo fraud model deterministically and export it to ONNX, with
## its drift reference profile from its training rows
demo-model: $(DEMO_MODEL)
$(DEMO_MODEL): build
	@mkdir -p $(dir $@)
	$(BIN) demo model --out $@ --profile-out $(DEMO_PROFILE)

## run: one node serving the demo fraud model on 127.0.0.1:8080 (admin on :8081)
run: ort build demo-model
	@echo "modelgate: scoring on http://127.0.0.1:8080, admin on http://127.0.0.1:8081"
	@echo "modelgate: admin token (written on first start): export MODELGATE_TOKEN=\$$(cat data/admin.token)"
	$(BIN) serve --ort-lib $(MODELGATE_ORT_LIB) --data-dir $(CURDIR)/data --model fraud=$(DEMO_MODEL) --profile fraud=$(DEMO_PROFILE)

## run-cluster: three nodes on 127.0.0.1 (n1 bootstraps, n2 and n3 join), the demo model
## served by all; scoring on :8180/:8280/:8380, admin on :8181/:8281/:8381, data in cluster-data/
run-cluster: ort build demo-model
	scripts/run-cluster.sh $(BIN) $(DEMO_MODEL) $(MODELGATE_ORT_LIB) $(CURDIR)/cluster-data

## demo: the closed loop on one node, told from the audit log: drift, the retraining
## webhook, examples/retrainer's candidate through shadow and canary to champion, then a
## bad candidate rolled back; exits 0 only if all of it happened (about 2 minutes)
demo: ort build
	$(GO) build -o bin/retrainer ./examples/retrainer
	$(GO) build -o bin/demo ./examples/demo
	bin/demo --modelgate $(BIN) --retrainer bin/retrainer --ort-lib $(MODELGATE_ORT_LIB)

## test: vet, every test, the race detector on the concurrent packages, a bounded fuzz run
test: ort vet test-unit test-race fuzz

test-unit:
	$(GO) test -count=1 -timeout 15m ./...

test-race:
	$(GO) test -count=1 -race -timeout 15m ./runtime/... ./gateway/... ./routing/... ./shadow/... ./cluster/... ./drift/... ./internal/artifact/... ./predlog/... ./lifecycle/... ./internal/node/... ./internal/auditarchive/... ./examples/retrainer/...

fuzz:
	$(FUZZ) -fuzz '^FuzzParseInfer$$' ./gateway/oip
	$(FUZZ) -fuzz '^FuzzDecodeCommand$$' ./registry
	$(FUZZ) -fuzz '^FuzzLogCodec$$' ./cluster
	$(FUZZ) -fuzz '^FuzzSketchImport$$' ./drift
	$(FUZZ) -fuzz '^FuzzBlock$$' ./predlog
	$(FUZZ) -fuzz '^FuzzDecodeRecord$$' ./predlog
	$(FUZZ) -fuzz '^FuzzStatic$$' ./internal/validate
	$(FUZZ) -fuzz '^FuzzDecodeGolden$$' ./internal/validate
	$(FUZZ) -fuzz '^FuzzImportComparison$$' ./shadow
	$(FUZZ) -fuzz '^FuzzImportEvaluation$$' ./shadow

## bench: the Go benchmarks, then the bench suite (gateway against the bare and net/http
## baselines, one run), whose table it rewrites in BENCHMARKS.md
bench: ort build
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./runtime/ ./gateway/ ./gateway/oip/ ./drift/
	$(BIN) bench suite --out bench-out --update BENCHMARKS.md

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin data cluster-data
