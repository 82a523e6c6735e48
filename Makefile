# Every target that needs servers runs through scripts/with-services.sh: it
# installs memcached and MariaDB when missing, starts private instances under
# .run/, exports TIERCACHE_* for the tests and stops them afterwards.

GO ?= go
PKGS ?= ./...
BENCH ?= .
BENCHTIME ?= 1s
BENCHCOUNT ?= 1

.PHONY: demo test bench vet services-start services-stop

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh $(PKGS)

# make bench BENCH=Load BENCHTIME=2s BENCHCOUNT=10 PKGS=./loader/... | tee new.txt
bench:
	bash scripts/with-services.sh $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem \
		-benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 60m $(PKGS)

vet:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$files"; exit 1; fi
	$(GO) vet $(PKGS)

# Keep the servers running between commands: eval "$$(scripts/services.sh env)"
services-start:
	bash scripts/services.sh start

services-stop:
	bash scripts/services.sh stop
