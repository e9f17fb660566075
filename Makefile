# interest_transfer: PGXS build.
#   make && make install          build and install into the pg_config found on PATH
#   make installcheck             pg_regress suites (sql/, expected/) against a running server
#   make unit                     C unit tests of the numeric kernels (no server)
#   tests/run                     everything, on a throw-away cluster (see README.md)

EXTENSION  = interest_transfer
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big = interest_transfer

# src/kernels: the numeric kernels, plain C without PostgreSQL headers,
# built once into a static library that the extension, the unit tests and
# the benchmarks link.  src/pg: the SQL-facing glue (PostgreSQL headers).
KERNEL_SRCS = $(sort $(wildcard src/kernels/*.c))
KERNEL_OBJS = $(patsubst %.c,%.o,$(KERNEL_SRCS))
KERNEL_LIB  = src/kernels/libitkernels.a
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/pg/*.c)))

DATA = $(wildcard sql/$(EXTENSION)--*.sql)

# pg_regress inputs are every sql/*.sql that is not an install or upgrade script.
REGRESS = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --outputdir=tests/results

# Isolation tests (several sessions at once): tests/isolation/specs/*.spec
# with tests/isolation/expected/*.out, run by make installcheck too.
ISOLATION = $(sort $(patsubst tests/isolation/specs/%.spec,%,$(wildcard tests/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=tests/isolation --outputdir=tests/isolation/results

# OpenBLAS, single-threaded build: a backend must not keep a BLAS thread pool
# running.  Training parallelises over rows with its own threads, created per
# call and joined (src/als.c); only the calling thread calls BLAS (this build
# is not safe for concurrent level-3 calls), the others post their dense
# products to it.
MULTIARCH   ?= $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR    ?= /usr/lib/$(MULTIARCH)/openblas-serial
BLAS_CFLAGS ?= -I/usr/include/$(MULTIARCH)/openblas-serial
BLAS_LIBS   ?= -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
PG_CPPFLAGS = -Isrc/pg -Isrc/kernels $(BLAS_CFLAGS) -DIT_VERSION=\"$(EXTVERSION)\"
PG_CFLAGS   = -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK  = $(KERNEL_LIB) $(BLAS_LIBS) -lpthread -lm

EXTRA_CLEAN = tests/results tests/isolation/results tests/unit/bin tests/bench/bin $(KERNEL_OBJS) $(KERNEL_LIB)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Rebuild every object when a header changes (PGXS tracks only the .c files).
$(OBJS): $(wildcard src/pg/*.h) $(wildcard src/kernels/*.h)

# The kernels: the compiler flags of the server's build (the same code
# generation as the glue), but only the kernels' own and BLAS's headers on
# the include path, so no PostgreSQL header can creep in.
KERNEL_CPPFLAGS = -Isrc/kernels $(BLAS_CFLAGS)

src/kernels/%.o: src/kernels/%.c $(wildcard src/kernels/*.h)
	$(CC) $(CFLAGS) $(CFLAGS_SL) $(KERNEL_CPPFLAGS) -c -o $@ $<

# The features models' optimiser takes a square root per parameter and step:
# without errno to set, the compiler can vectorise it.  Their passes are
# short elementwise loops over a minibatch (biases, ReLU masks), which -O2's
# "very cheap" vectoriser leaves scalar because their length is not a
# multiple of the vector width; the dynamic cost model vectorises them.
# Neither changes a result: no sum is reordered.
src/kernels/mlp.o: CFLAGS += -fno-math-errno -fvect-cost-model=dynamic

$(KERNEL_LIB): $(KERNEL_OBJS)
	rm -f $@
	$(AR) crs $@ $^

$(shlib): $(KERNEL_LIB)

# Kernel unit tests: each tests/unit/test_*.c is a program linked with the
# kernel library alone (no PostgreSQL headers, no server).
UNIT_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Isrc/kernels -Itests/unit $(BLAS_CFLAGS)
UNIT_TESTS = $(patsubst tests/unit/%.c,tests/unit/bin/%,$(wildcard tests/unit/test_*.c))

tests/unit/bin/%: tests/unit/%.c tests/unit/unit.h $(KERNEL_LIB) $(wildcard src/kernels/*.h)
	@mkdir -p tests/unit/bin
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(KERNEL_LIB) $(BLAS_LIBS) -lpthread -lm

unit: $(UNIT_TESTS)
	@status=0; for t in $(UNIT_TESTS); do echo "== $$t"; $$t || status=1; done; exit $$status

.PHONY: unit

# Kernel benchmark (a program, not a test): ALS-CG seconds per iteration and
# GFLOP/s next to OpenBLAS sgemm, top-k latency.  BENCH_ARGS="-i 5" etc.
tests/bench/bin/bench_als: tests/bench/bench_als.c $(KERNEL_LIB) src/kernels/kernels.h
	@mkdir -p tests/bench/bin
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(KERNEL_LIB) $(BLAS_LIBS) -lpthread -lm

tests/bench/bin/bench_foldin: tests/bench/bench_foldin.c $(KERNEL_LIB) src/kernels/kernels.h
	@mkdir -p tests/bench/bin
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(KERNEL_LIB) $(BLAS_LIBS) -lpthread -lm

# The memory-bandwidth floor of recommend()'s 8-bit scan, for
# tests/bench/recommend_latency.sh.
tests/bench/bin/scan_bandwidth: tests/bench/scan_bandwidth.c $(KERNEL_LIB) src/kernels/kernels.h
	@mkdir -p tests/bench/bin
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(KERNEL_LIB) $(BLAS_LIBS) -lpthread -lm

# The stand-in for implicit's CG ALS fit that tests/bench/train_speed.sh
# times train() against (not in the normal build, not in tests/run).  It
# calls BLAS from several threads at once, as implicit does, which the
# serial OpenBLAS is not safe for, so it links the pthreads build (Debian:
# libopenblas0-pthread) and runs it with one BLAS thread per caller.
IMPLICIT_BLAS_DIR  ?= /usr/lib/$(MULTIARCH)/openblas-pthread
IMPLICIT_BLAS_LIBS ?= -L$(IMPLICIT_BLAS_DIR) -Wl,-rpath,$(IMPLICIT_BLAS_DIR) -l:libopenblas.so.0

tests/bench/bin/implicit_cg: tests/bench/implicit_cg.c src/kernels/blas_core.c src/kernels/kernels.h
	@test -e $(IMPLICIT_BLAS_DIR)/libopenblas.so.0 || { echo "$(IMPLICIT_BLAS_DIR)/libopenblas.so.0 is missing: install the pthreads OpenBLAS (Debian: libopenblas0-pthread) or set IMPLICIT_BLAS_DIR" >&2; exit 1; }
	@mkdir -p tests/bench/bin
	$(CC) $(UNIT_CFLAGS) -fopenmp -o $@ $< src/kernels/blas_core.c $(IMPLICIT_BLAS_LIBS) -lm

bench-kernels: tests/bench/bin/bench_als
	tests/bench/bin/bench_als $(BENCH_ARGS)

.PHONY: bench-kernels
