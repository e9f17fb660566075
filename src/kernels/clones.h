/*
 * clones.h
 *    IT_CLONES: a kernel loop compiled for the generic target plus AVX2/FMA
 *    and AVX-512, picked at load time by the dynamic linker (GCC function
 *    multi-versioning), so a generic build still uses the machine's vector
 *    units.  Define IT_NO_TARGET_CLONES to build the generic code only.
 *    Also the kernels' way to start worker threads.  Internal to
 *    src/kernels.
 */
#ifndef IT_CLONES_H
#define IT_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__ELF__) && !defined(IT_NO_TARGET_CLONES)
#define IT_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define IT_CLONES
#endif

/*
 * Kernels written for one vector width (als_kernel.h, topk_kernel.h) are
 * built in IT_WIDTH_SETS sets: with GCC on x86-64, set 0 at 4 floats for
 * the baseline, set 1 at 8 under IT_TARGET_V3 (AVX2, FMA) and set 2 at 16
 * under IT_TARGET_V4 (AVX-512); elsewhere one set at IT_ONE_WIDTH, the
 * widest the build's flags allow.  A vector wider than the target's
 * registers is no vector to GCC: it keeps it in memory, and lowers a
 * compare of it to a branch per lane.  it_width_set_runs(i) says whether
 * this machine runs set i.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(IT_NO_TARGET_CLONES)
#define IT_WIDTH_SETS 3
#define IT_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#define IT_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
static inline int
it_width_set_runs(int i)
{
    if (i == 1)
        return __builtin_cpu_supports("x86-64-v3");
    if (i == 2)
        return __builtin_cpu_supports("x86-64-v4");
    return i == 0;
}
#else
#define IT_WIDTH_SETS 1
#if defined(IT_ONE_WIDTH)
/* given by the build */
#elif defined(__AVX512F__)
#define IT_ONE_WIDTH 16
#elif defined(__AVX2__)
#define IT_ONE_WIDTH 8
#else
#define IT_ONE_WIDTH 4
#endif
static inline int
it_width_set_runs(int i)
{
    return i == 0;
}
#endif

/* The floats per vector of set i. */
static inline int
it_width_of_set(int i)
{
#if IT_WIDTH_SETS == 3
    return 4 << i;
#else
    return IT_ONE_WIDTH;
#endif
}

/* The widest set this machine runs. */
static inline int
it_best_width_set(void)
{
    int         i = IT_WIDTH_SETS - 1;

    while (i > 0 && !it_width_set_runs(i))
        i--;
    return i;
}

/*
 * A file's choice of set, -1 until its kernels first run (read and
 * written atomically): it_width_choice returns it, the widest set on
 * first use; it_width_choose sets it to the set of width floats (0: the
 * widest) and returns the width now used, or 0, changing nothing, when
 * this machine or build has no such set.
 */
static inline int
it_width_choice(int *choice)
{
    int         c = __atomic_load_n(choice, __ATOMIC_RELAXED);

    if (c < 0)
    {
        c = it_best_width_set();
        __atomic_store_n(choice, c, __ATOMIC_RELAXED);
    }
    return c;
}

static inline int
it_width_choose(int *choice, int width)
{
    for (int i = 0; i < IT_WIDTH_SETS; i++)
        if (width == 0 ? i == it_best_width_set() : it_width_of_set(i) == width && it_width_set_runs(i))
        {
            __atomic_store_n(choice, i, __ATOMIC_RELAXED);
            return it_width_of_set(i);
        }
    return 0;
}

/*
 * Starts n threads running fn(args[i]) with every signal blocked (als.c);
 * returns how many started, in tids[0..).  Worker threads of the kernels
 * call neither BLAS nor anything outside src/kernels and libc.
 */
#include <pthread.h>
int         it_start_threads(void *(*fn) (void *), void **args, int n, pthread_t *tids);

/*
 * Runs fn(args[i]) for i in [0, n): args[0] on the caller, the others on
 * threads it starts (it_start_threads), the caller taking any part no
 * thread took; returns when all are done.
 */
void        it_run_parts(void *(*fn) (void *), void **args, int n);

/*
 * A team for one call (team.c): the calling thread and up to
 * IT_TEAM_MAX - 1 workers, started by it_team_start and joined by
 * it_team_stop before the call returns.  it_team_run(team, fn, args, n)
 * runs fn(args[0]) on the caller and fn(args[t]) on worker t, any part no
 * worker sits at on the caller too, and returns when all are done; a
 * worker spins up to spins pauses for the next job before it sleeps.
 * it_team_start returns false, and it_team_run then runs every part on
 * the caller, when no worker would start (threads < 2).
 */
#include <stdbool.h>
#include <stdint.h>

#define IT_TEAM_MAX 64

typedef struct ItTeam
{
    pthread_mutex_t mu;         /* guards sleepers; go's mutex */
    pthread_cond_t go;
    int         nthreads;       /* the calling thread included */
    int         started;        /* workers running */
    int         sleepers;       /* workers waiting on go */
    unsigned    spins;
    uint64_t    generation;     /* atomic: of the current job */
    int         pending;        /* atomic: workers still on it */
    int         quit;           /* atomic */
    /* the current job */
    void       *(*fn) (void *);
    void      **args;
    int         nparts;
    pthread_t   tids[IT_TEAM_MAX];
    struct ItTeamSeat
    {
        struct ItTeam *team;
        int         t;
    }           seats[IT_TEAM_MAX];
} ItTeam;

bool        it_team_start(ItTeam *team, int threads, unsigned spins);
void        it_team_run(ItTeam *team, void *(*fn) (void *), void **args, int n);
void        it_team_stop(ItTeam *team);

/* One pause of a thread spinning on another's flag (x86's PAUSE). */
static inline void
it_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif                          /* IT_CLONES_H */
