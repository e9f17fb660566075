# interest_transfer: PGXS build.
#   make && make install          build and install into the pg_config found on PATH
#   make installcheck             pg_regress suites (sql/, expected/) against a running server
#   make unit                     C unit tests of the numeric kernels (no server)
#   tests/run                     everything, on a throw-away cluster (see README.md)

EXTENSION  = interest_transfer
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big = interest_transfer

KERNEL_SRCS = src/sparse.c src/als.c src/foldin.c src/topk.c src/metrics.c src/mlp.c
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

DATA = $(wildcard sql/$(EXTENSION)--*.sql)

# pg_regress inputs are every sql/*.sql that is not an install or upgrade script.
REGRESS = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --outputdir=tests/results

# OpenBLAS, single-threaded build: a backend must not keep a BLAS thread pool
# running.  Training parallelises over rows with its own threads, created per
# call and joined (src/als.c), each calling this serial BLAS.
MULTIARCH   ?= $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR    ?= /usr/lib/$(MULTIARCH)/openblas-serial
BLAS_CFLAGS ?= -I/usr/include/$(MULTIARCH)/openblas-serial
BLAS_LIBS   ?= -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
PG_CPPFLAGS = $(BLAS_CFLAGS)
PG_CFLAGS   = -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK  = $(BLAS_LIBS) -lpthread -lm

EXTRA_CLEAN = tests/results tests/unit/test_kernels

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Kernel unit tests: the kernel files alone, no PostgreSQL headers or server.
UNIT_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Isrc $(BLAS_CFLAGS)
tests/unit/test_kernels: $(wildcard tests/unit/*.c) $(KERNEL_SRCS) src/kernels.h
	$(CC) $(UNIT_CFLAGS) -o $@ $(wildcard tests/unit/*.c) $(KERNEL_SRCS) $(BLAS_LIBS) -lpthread -lm

unit: tests/unit/test_kernels
	tests/unit/test_kernels

.PHONY: unit
