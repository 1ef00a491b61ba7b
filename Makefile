# make bench: run every bench/*.py script (each prints its figures and the reference they
# compare against) and collect what they print into bench/RESULTS.md, one table row per line.
# Pass arguments to one script with <NAME>_ARGS, e.g. make bench CHAOS_ARGS="--seconds 60".
# The table leaves out the workers' own INFO/DEBUG log lines (the console shows them all);
# warnings and errors stay in it.

PYTHON ?= .venv/bin/python
BENCHES := $(sort $(wildcard bench/*.py))
RESULTS := bench/RESULTS.md

.PHONY: bench
bench:
	@$(PYTHON) -m pip install -q -e '.[bench]'  # bench/bookcore.py's C reference
	@tmp=$$(mktemp); status=0; \
	{ echo "# Benchmark results"; echo; \
	  echo "Written by \`make bench\` on $$(date -u +%Y-%m-%dT%H:%MZ) ($$(nproc) cores)."; \
	  echo "Each row is one line a script printed: its figure and the reference it compares against."; \
	  echo "Machine speed when it started (figures move with it): $$($(PYTHON) -c 'import time; t = time.perf_counter(); sum(range(30_000_000)); print(f"sum(range(30M)) in {time.perf_counter() - t:.2f} s")')."; \
	  echo; echo "| script | result |"; echo "|---|---|"; } > $$tmp; \
	for b in $(BENCHES); do \
	  name=$$(basename $$b .py); var=$$(echo $$name | tr a-z A-Z)_ARGS; \
	  args=$$(eval echo \$${$$var}); \
	  echo ">> $(PYTHON) $$b $$args"; printf "| %s | \`%s\` |\n" "$$name" "$(PYTHON) $$b $$args" >> $$tmp; \
	  $(PYTHON) $$b $$args > $$tmp.out 2>&1; code=$$?; cat $$tmp.out; \
	  grep -v -E "^\s*$$|^[0-9:.]+ (DEBUG|INFO) " $$tmp.out | sed -e "s/|/\\\\|/g" \
	    | while IFS= read -r line; do printf "| %s | %s |\n" "$$name" "$$line"; done >> $$tmp; \
	  if [ $$code -ne 0 ]; then status=1; printf "| %s | **exit status %s** |\n" "$$name" "$$code" >> $$tmp; fi; \
	done; \
	chmod 644 $$tmp; mv $$tmp $(RESULTS); rm -f $$tmp.out; echo "wrote $(RESULTS)"; exit $$status

# make check-repeat: the README's test command (its second ```sh block, the one .ci/run runs)
# REPEAT times in a row (default 5) in one clean clone of HEAD, stopping at the first failure.
# Proves the suite is not flaky on this machine; commit first (the clone takes HEAD).
REPEAT ?= 5

.PHONY: check-repeat
check-repeat:
	@cmd=$$(awk '/^```sh$$/{n++; next} /^```$$/{next} n==2{print; exit}' README.md); \
	test -n "$$cmd" || { echo "no test command in README.md"; exit 2; }; \
	dir=$$(mktemp -d)/kxfeed; git clone -q . $$dir && cd $$dir || exit 2; \
	echo "clean clone of $$(git rev-parse --short HEAD) in $$dir"; \
	for i in $$(seq 1 $(REPEAT)); do \
	  echo ">> run $$i/$(REPEAT): $$cmd"; start=$$(date +%s); \
	  if ! sh -c "$$cmd"; then echo "check-repeat: run $$i of $(REPEAT) FAILED (clone kept in $$dir)"; exit 1; fi; \
	  echo ">> run $$i passed in $$(( $$(date +%s) - start )) s"; \
	done; \
	echo "check-repeat: $(REPEAT) of $(REPEAT) runs passed"; rm -rf $$dir
