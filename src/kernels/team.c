/*
 * team.c
 *    A team of threads for one call: the calling thread and workers
 *    started by it_team_start (it_start_threads: every signal blocked) and
 *    joined by it_team_stop before the call returns, never left running.
 *    In between, the caller hands the team parts of a job (it_team_run)
 *    without starting threads again: a worker spins a while between two
 *    jobs and only then sleeps on a condition variable, since waking a
 *    thread costs about as much as starting one on a virtual machine.
 *    See clones.h.
 *
 * Plain C, no PostgreSQL headers.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "clones.h"

/* Waits until the team's generation is no longer seen, or it quits. */
static void
TeamWait(ItTeam *team, uint64_t seen)
{
    for (unsigned spins = 0; spins < team->spins; spins++)
    {
        if (__atomic_load_n(&team->generation, __ATOMIC_ACQUIRE) != seen ||
            __atomic_load_n(&team->quit, __ATOMIC_ACQUIRE))
            return;
        it_cpu_relax();
    }
    pthread_mutex_lock(&team->mu);
    team->sleepers++;
    while (__atomic_load_n(&team->generation, __ATOMIC_ACQUIRE) == seen &&
           !__atomic_load_n(&team->quit, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&team->go, &team->mu);
    team->sleepers--;
    pthread_mutex_unlock(&team->mu);
}

/* Wakes the workers that sleep (those that spin see the store themselves). */
static void
TeamWake(ItTeam *team)
{
    pthread_mutex_lock(&team->mu);
    if (team->sleepers > 0)
        pthread_cond_broadcast(&team->go);
    pthread_mutex_unlock(&team->mu);
}

static void *
TeamWorker(void *arg)
{
    struct ItTeamSeat *seat = arg;
    ItTeam     *team = seat->team;
    uint64_t    seen = 0;

    for (;;)
    {
        TeamWait(team, seen);
        if (__atomic_load_n(&team->quit, __ATOMIC_ACQUIRE))
            return NULL;
        seen = __atomic_load_n(&team->generation, __ATOMIC_ACQUIRE);
        if (seat->t < team->nparts)
            team->fn(team->args[seat->t]);
        __atomic_fetch_sub(&team->pending, 1, __ATOMIC_RELEASE);
    }
}

bool
it_team_start(ItTeam *team, int threads, unsigned spins)
{
    void       *argp[IT_TEAM_MAX];

    memset(team, 0, sizeof(*team));
    team->nthreads = 1;
    team->spins = spins;
    if (threads > IT_TEAM_MAX)
        threads = IT_TEAM_MAX;
    if (threads < 2)
        return false;
    pthread_mutex_init(&team->mu, NULL);
    pthread_cond_init(&team->go, NULL);
    for (int t = 1; t < threads; t++)
    {
        team->seats[t - 1].team = team;
        team->seats[t - 1].t = t;
        argp[t - 1] = &team->seats[t - 1];
    }
    team->started = it_start_threads(TeamWorker, argp, threads - 1, team->tids);
    team->nthreads = team->started + 1;
    if (team->started == 0)
    {
        pthread_mutex_destroy(&team->mu);
        pthread_cond_destroy(&team->go);
        return false;
    }
    return true;
}

void
it_team_run(ItTeam *team, void *(*fn) (void *), void **args, int n)
{
    if (n <= 0)
        return;
    if (team->started == 0 || n == 1)
    {
        for (int t = 0; t < n; t++)
            fn(args[t]);
        return;
    }
    team->fn = fn;
    team->args = args;
    team->nparts = n;
    __atomic_store_n(&team->pending, team->started, __ATOMIC_RELAXED);
    __atomic_store_n(&team->generation, team->generation + 1, __ATOMIC_RELEASE);
    TeamWake(team);

    fn(args[0]);
    /* parts no worker sits at */
    for (int t = team->nthreads; t < n; t++)
        fn(args[t]);

    for (unsigned spins = 1; __atomic_load_n(&team->pending, __ATOMIC_ACQUIRE) > 0; spins++)
    {
        /* a worker may be descheduled (more threads than cores): let it run */
        if (spins % 4096 == 0)
            sched_yield();
        else
            it_cpu_relax();
    }
}

void
it_team_stop(ItTeam *team)
{
    if (team->started == 0)
        return;
    __atomic_store_n(&team->quit, 1, __ATOMIC_RELEASE);
    TeamWake(team);
    for (int t = 0; t < team->started; t++)
        pthread_join(team->tids[t], NULL);
    pthread_mutex_destroy(&team->mu);
    pthread_cond_destroy(&team->go);
    team->started = 0;
    team->nthreads = 1;
}
