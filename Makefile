# hotdeskd -- one plain Makefile.
#
#   make            build the daemon (build/hotdeskd), hotdeskctl and the core library
#   make run        start hotdeskd with demo data on an embedded SQLite file
#   make test       build and run the whole test suite (lint + unit + end to end)
#   make asan       the same suite built with ASan/UBSan into build-asan/,
#                   with the lock order checked (-DHD_LOCK_ORDER, src/lockorder.h)
#   make fuzz       every libFuzzer harness (tests/fuzz/) for FUZZ_SECONDS each
#   make coverage   the suite built with gcov into build-cov/; line coverage of
#                   the application layer, failing under COVERAGE_MIN %
#   make install    the daemon, its data, man pages, systemd unit and config
#                   (PREFIX=/usr/local, DESTDIR= for staging; docs/OPERATIONS.md)
#   make uninstall  the same files removed (configuration and state kept)
#
# The core (everything in src/ but main.c) is compiled once into
# $(B)/libhotdeskd.a, linked by the daemon and by every test.
#
# `make test` and `make run` first install what is missing (scripts/deps.sh),
# then build in a second make: pkg-config is asked only when a recipe needs
# the flags (recursive variables), never while this file is read, so a
# first run on a machine without the libraries yet builds like any other.

B        ?= build
CC       ?= cc
PKGS     := libmicrohttpd libxml-2.0 sqlite3 libsodium jansson inih gnutls libcurl
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter
CFLAGS   ?= -O2 -g
# CFLAGS/LDFLAGS stay the user's (make asan sets them); ours are appended
# recursive (=): pkg-config runs when a recipe uses them, after `deps`
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
XCFLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) $(if $(WERROR),-Werror) \
            $(PKG_CFLAGS) -Isrc
LDLIBS   += $(PKG_LIBS) -lpthread -lm
# the builds inside test, asan, fuzz and coverage use every CPU, unless the
# caller chose -j itself (then its job server is shared)
JOBS     = $(if $(findstring -j,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 1))

LIB_SRC  := $(filter-out src/main.c,$(sort $(wildcard src/*.c)))
# the vendor registry is generated from the vendor files (src/vendor.h)
VENDOR_SRC := $(filter-out src/vendor.c,$(sort $(wildcard src/vendor_*.c)))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(B)/obj/%.o) $(B)/obj/vendor_registry.o
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TEST_LIB = $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

.PHONY: all prompts run test lint unit e2e asan fuzz fuzz-build container clean deps check-config install uninstall coverage
all: $(B)/hotdeskd $(B)/hotdeskctl prompts

# Spoken prompts of the Virtualization Center, one folder per language,
# made from prompts/<lang>.txt with espeak-ng and sox (docs/VC.md).
PROMPT_TXT := $(wildcard prompts/*.txt)
PROMPT_SET := $(PROMPT_TXT:prompts/%.txt=$(B)/prompts/%/.made)
prompts: $(PROMPT_SET)
$(B)/prompts/%/.made: prompts/%.txt scripts/mkprompts.sh
	sh scripts/mkprompts.sh $< $(@D) && touch $@

$(B)/obj/%.o: src/%.c Makefile | $(B)/obj
	$(CC) $(CFLAGS) $(XCFLAGS) -MMD -c -o $@ $<

$(B)/gen/vendor_registry.c: scripts/mkregistry.sh $(VENDOR_SRC) | $(B)/gen
	sh scripts/mkregistry.sh $(VENDOR_SRC) > $@.tmp && mv $@.tmp $@

$(B)/obj/vendor_registry.o: $(B)/gen/vendor_registry.c Makefile | $(B)/obj
	$(CC) $(CFLAGS) $(XCFLAGS) -MMD -c -o $@ $<

$(B)/libhotdeskd.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(B)/hotdeskd: $(B)/obj/main.o $(B)/libhotdeskd.a
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/%.c tests/testutil.h $(B)/libhotdeskd.a | $(B)/tests
	$(CC) $(CFLAGS) $(XCFLAGS) -Itests $(LDFLAGS) -o $@ $< $(B)/libhotdeskd.a $(TEST_LIB) $(LDLIBS)

# The application-layer tests (tests/faults.h) link the core with the
# store's fault hook (store.h, HD_FAULTS): the k-th store step fails.  Only
# they do; the daemon and every other test link the store without it.
FAULT_TESTS := test_service test_publish test_resync_engine
FAULT_BIN := $(FAULT_TESTS:%=$(B)/tests/%)
$(B)/obj/store-faults.o: src/store.c Makefile | $(B)/obj
	$(CC) $(CFLAGS) $(XCFLAGS) -DHD_FAULTS -MMD -c -o $@ $<

$(B)/libhotdeskd-faults.a: $(filter-out $(B)/obj/store.o,$(LIB_OBJ)) $(B)/obj/store-faults.o
	rm -f $@ && ar rcs $@ $^

$(FAULT_BIN): $(B)/tests/%: tests/%.c tests/testutil.h tests/faults.h $(B)/libhotdeskd-faults.a | $(B)/tests
	$(CC) $(CFLAGS) $(XCFLAGS) -DHD_FAULTS -Itests $(LDFLAGS) -o $@ $< $(B)/libhotdeskd-faults.a $(TEST_LIB) $(LDLIBS)

# bench/walbuf.sh's driver: the store's commits of *30 moves through
# SQLite's own VFS or walbuf's (src/walbuf.h)
$(B)/bench/commits: bench/commits.c $(B)/libhotdeskd.a | $(B)/bench
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) -o $@ $< $(B)/libhotdeskd.a $(LDLIBS)

# hotdeskctl: the admin API's command-line client (libcurl + jansson only)
CLI_PKGS := libcurl jansson
$(B)/hotdeskctl: cli/hotdeskctl.c Makefile | $(B)/obj
	$(CC) $(CFLAGS) -std=c11 -D_GNU_SOURCE $(WARN) $(if $(WERROR),-Werror) \
	  $(shell pkg-config --cflags $(CLI_PKGS)) $(LDFLAGS) -o $@ $< \
	  $(shell pkg-config --libs $(CLI_PKGS))

$(B)/obj $(B)/tests $(B)/gen $(B)/bench:
	mkdir -p $@

deps:
	@sh scripts/deps.sh

# Unit and component tests: one Criterion binary per tests/test_<module>.c.
unit: $(TEST_BIN)
	@sh scripts/run-unit.sh $(TEST_BIN)

# End-to-end tests: the real daemon on loopback, driven by real clients.
# E2E_JOBS test files run at once (pytest-xdist; each test has its own daemon,
# directory and OS-chosen ports; E2E_JOBS=0 runs them one by one).
E2E_JOBS ?= 4
export E2E_JOBS
e2e: $(B)/hotdeskd $(B)/hotdeskctl
	HOTDESKD=$(abspath $(B)/hotdeskd) HOTDESKCTL=$(abspath $(B)/hotdeskctl) \
	  /usr/bin/python3 -m pytest -q -n $(E2E_JOBS) --dist loadfile tests/e2e

# deps first, then a new make for the rest (see the top of this file)
test: deps
	$(MAKE) $(JOBS) lint all $(TEST_BIN)
	$(MAKE) unit e2e

# Source checks: one function-definition style (scripts/check-defs.sh),
# and the check itself still catching the two cases of tests/lint/; only a
# family's own vendor file names it (scripts/check-vendors.sh); the
# registry generator refuses two profiles of one match_priority; the pure
# rules reach no thread, clock, store or log (scripts/check-pure.sh);
# every event name written in src/ is noun.verb and listed in src/event.c
# (scripts/check-events.py, with the three cases of tests/lint/bad_events.c).
lint:
	sh scripts/check-defs.sh
	test "$$(sh scripts/check-defs.sh tests/lint/bad_defs.c | wc -l)" = 2
	sh scripts/check-vendors.sh
	sh scripts/check-pure.sh
	/usr/bin/python3 scripts/check-events.py
	test "$$(/usr/bin/python3 scripts/check-events.py tests/lint/bad_events.c | wc -l)" = 4
	! sh scripts/mkregistry.sh $(firstword $(VENDOR_SRC)) $(firstword $(VENDOR_SRC)) \
	  >/dev/null 2>&1

asan:
	@sh scripts/deps.sh asan
	$(MAKE) $(JOBS) B=build-asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DHD_LOCK_ORDER" \
	  LDFLAGS="-fsanitize=address,undefined" all $(addprefix build-asan/tests/,$(notdir $(TEST_BIN)))
	sh scripts/run-asan.sh

# Fuzzing: each tests/fuzz/fuzz_<name>.c is a libFuzzer harness linked with
# the core built by clang with ASan/UBSan into build-fuzz/; `make fuzz` runs
# each for FUZZ_SECONDS from its seed corpus tests/fuzz/corpus/<name>/ and
# fails on any crash, leak or sanitizer report (scripts/run-fuzz.sh).
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined

$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(B)/libhotdeskd.a | $(B)/fuzz
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(XCFLAGS) $(LDFLAGS) -o $@ $< $(B)/libhotdeskd.a $(LDLIBS)

$(B)/fuzz:
	mkdir -p $@

fuzz-build:
	$(MAKE) $(JOBS) B=build-fuzz CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	  LDFLAGS="$(FUZZ_SAN)" $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/fuzz/%)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) sh scripts/run-fuzz.sh $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/fuzz/%)

# Line coverage of the application layer (gcov): everything built with
# --coverage into build-cov/ (counts from an earlier run removed), the unit
# tests run, then the end-to-end suite against that daemon (COVERAGE_E2E=0
# leaves it out: unit tests only), then scripts/coverage.sh reports
# service.c, publish.c (with its pubcache.c and tftpw.c), resync.c,
# resync_engine.c and every api_*.c and
# fails when one is under COVERAGE_MIN % of its lines.  The suite runs
# without this make's variables (its own `make install` builds into build/,
# as in `make test`).  Not in CI (.ci/run): the suite again on an
# unoptimized build would take CI past its time budget.
COVERAGE_MIN ?= 80
COVERAGE_E2E ?= 1
COV_FLAGS := CC=gcc CFLAGS="-O0 -g --coverage" LDFLAGS="--coverage"
COV_FILES = src/service.c src/publish.c src/pubcache.c src/tftpw.c src/resync.c src/resync_engine.c \
            $(sort $(wildcard src/api_*.c))
coverage: deps
	rm -f build-cov/obj/*.gcda
	$(MAKE) $(JOBS) B=build-cov $(COV_FLAGS) all $(addprefix build-cov/tests/,$(notdir $(TEST_BIN)))
	sh scripts/run-unit.sh $(addprefix build-cov/tests/,$(notdir $(TEST_BIN)))
	if [ "$(COVERAGE_E2E)" != 0 ]; then env -u MAKEFLAGS -u MAKELEVEL \
	  HOTDESKD=$(abspath build-cov/hotdeskd) HOTDESKCTL=$(abspath build-cov/hotdeskctl) \
	  /usr/bin/python3 -m pytest -q tests/e2e; fi
	sh scripts/coverage.sh build-cov $(COVERAGE_MIN) $(COV_FILES)

run: deps
	$(MAKE) all
	sh scripts/demo.sh

# The container image (docker/): built and run with podman, as root
# (tests/container/test_image.py; the base image is cached).
container:
	@sh scripts/deps.sh container
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/container

clean:
	rm -rf build build-asan build-fuzz build-cov

# ---- installation (FHS) ------------------------------------------------
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share/hotdeskd
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSCONFDIR  ?= /etc
TFTPROOT    ?= /srv/tftp
DATA_TREES  := sql templates provisioning web contrib
SUBST = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' \
            -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@TFTPROOT@|$(TFTPROOT)|g'

# Installs every file; the configuration only when absent (an operator's
# edits survive a reinstall).  Installing into the live system as root
# (no DESTDIR) also creates the hotdeskd account and its directories.
install: $(B)/hotdeskd $(B)/hotdeskctl prompts
	install -D -m 0755 $(B)/hotdeskd $(DESTDIR)$(SBINDIR)/hotdeskd
	install -D -m 0755 $(B)/hotdeskctl $(DESTDIR)$(BINDIR)/hotdeskctl
	for t in $(DATA_TREES); do find $$t -type f | sort | while read -r f; do \
	  install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/$$f" || exit 1; done || exit 1; done
	cd $(B) && find prompts -type f ! -name .made | sort | while read -r f; do \
	  install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/$$f" || exit 1; done
	for m in man/*.[1-8]; do \
	  install -D -m 0644 "$$m" "$(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/}" || exit 1; done
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	$(SUBST) dist/hotdeskd.service.in > $(DESTDIR)$(UNITDIR)/hotdeskd.service
	$(SUBST) dist/hotdeskd.tmpfiles.in > $(DESTDIR)$(TMPFILESDIR)/hotdeskd.conf
	install -m 0644 dist/hotdeskd.sysusers $(DESTDIR)$(SYSUSERSDIR)/hotdeskd.conf
	chmod 0644 $(DESTDIR)$(UNITDIR)/hotdeskd.service $(DESTDIR)$(TMPFILESDIR)/hotdeskd.conf
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/hotdeskd
	if [ ! -e $(DESTDIR)$(SYSCONFDIR)/hotdeskd/hotdeskd.ini ]; then \
	  $(SUBST) dist/hotdeskd.ini.in > $(DESTDIR)$(SYSCONFDIR)/hotdeskd/hotdeskd.ini && \
	  chmod 0640 $(DESTDIR)$(SYSCONFDIR)/hotdeskd/hotdeskd.ini; fi
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  systemd-sysusers $(SYSUSERSDIR)/hotdeskd.conf && \
	  systemd-tmpfiles --create $(TMPFILESDIR)/hotdeskd.conf && \
	  chgrp hotdeskd $(SYSCONFDIR)/hotdeskd/hotdeskd.ini; fi

# Removes what install put, but the configuration, the account and the
# state (/var/lib/hotdeskd): uninstalling keeps the data.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/hotdeskd $(DESTDIR)$(BINDIR)/hotdeskctl \
	      $(DESTDIR)$(UNITDIR)/hotdeskd.service \
	      $(DESTDIR)$(SYSUSERSDIR)/hotdeskd.conf $(DESTDIR)$(TMPFILESDIR)/hotdeskd.conf
	for m in man/*.[1-8]; do rm -f "$(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/}"; done
	rm -rf $(DESTDIR)$(DATADIR)

-include $(LIB_OBJ:.o=.d) $(B)/obj/main.d $(B)/obj/store-faults.d
