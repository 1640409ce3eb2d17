/* progress.c — the CLI's progress report on stderr for long work (explain, bench, and any later
 * command that walks many units: audit): units done of a total, the stage at hand (a method),
 * units per second, an ETA and the failures so far. On a terminal one line redrawn in place at
 * least every second, also while one long method runs on one image (the library's progress
 * callback moves the count by fractions of a unit); elsewhere a plain line at most every
 * CLI_PROGRESS_LINE_SECONDS. A background thread does the drawing, so the line moves even when
 * no call comes for a while; cli_error clears the line first, so messages never mix with it. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* The one report on the screen: cli_error clears its line. (The program's only progress report;
 * the library keeps no such state.) */
static cli_progress *active;
static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* "1h02m", "3m05s", "42s" */
static void fmt_secs(char *buf, size_t len, double s) {
    if (!(s >= 0) || s > 360000) { snprintf(buf, len, "?"); return; }
    long t = lround(s);
    if (t >= 3600) snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, len, "%lds", t);
}

/* The report's numbers as text, the stage last (a narrow terminal cuts it first):
 * "12/100 inputs (12%), 0.83 inputs/s, ETA 1m46s, 2 failed, gradcam" (below one unit a second
 * the rate reads "12.5 s/input"). */
static void describe(const cli_progress *p, double now, char *buf, size_t len, int with_bar) {
    double eff = (double)p->done + p->part;
    if (eff > (double)p->total) eff = (double)p->total;
    double el = now - p->t0, rate = el > 0 ? eff / el : 0;
    char eta[32] = "?", bar[40] = "";
    if (rate > 0) fmt_secs(eta, sizeof eta, ((double)p->total - eff) / rate);
    double frac = p->total > 0 ? eff / (double)p->total : 0;
    if (with_bar) {
        const int W = 20;
        int full = (int)(frac * W);
        bar[0] = '[';
        for (int k = 0; k < W; k++) bar[1 + k] = k < full ? '#' : '.';
        bar[W + 1] = ']';
        bar[W + 2] = ' ';
        bar[W + 3] = 0;
    }
    char rs[48], one[16];
    snprintf(one, sizeof one, "%s", p->unit);
    size_t ul = strlen(one);
    if (ul > 1 && one[ul - 1] == 's') one[ul - 1] = 0;   /* "inputs" -> "input" */
    if (rate >= 1) snprintf(rs, sizeof rs, "%.3g %s/s", rate, p->unit);
    else if (rate > 0) snprintf(rs, sizeof rs, "%.3g s/%s", 1 / rate, one);
    else snprintf(rs, sizeof rs, "- %s/s", p->unit);
    char fails[32] = "";
    if (p->failed) snprintf(fails, sizeof fails, ", %lld failed", (long long)p->failed);
    snprintf(buf, len, "%s%lld/%lld %s (%.0f%%), %s, ETA %s%s%s%s", bar, (long long)p->done, (long long)p->total,
             p->unit, 100 * frac, rs, eta, fails, p->stage[0] ? ", " : "", p->stage);
}

/* Draw now (the caller holds p->mu). */
static void draw(cli_progress *p, double now) {
    char text[512], line[600];
    describe(p, now, text, sizeof text, p->tty);
    if (p->tty) {
        int cols = 80;
        struct winsize ws;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) cols = ws.ws_col;
        int n = snprintf(line, sizeof line, "\rsalient %s %s", p->what, text);
        if (n > cols) n = cols;   /* never wrap: \r could not take a wrapped line back */
        if (n < 0) n = 0;
        if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
        memcpy(line + n, "\033[K", 4);
        fputs(line, stderr);
        p->on_line = 1;
    } else {
        fprintf(stderr, "salient: %s: %s\n", p->what, text);
    }
    fflush(stderr);
    p->last_draw = now;
}

static void *ticker(void *arg) {
    cli_progress *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;   /* look ten times a second */
        if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
        if (p->stop) break;
        double now = mono_s();
        if (now - p->last_draw >= p->interval) draw(p, now);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int cli_progress_start(cli_progress *p, const char *what, const char *unit, int64_t total, int quiet) {
    memset(p, 0, sizeof *p);
    snprintf(p->what, sizeof p->what, "%s", what);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->t0 = mono_s();
    p->quiet = quiet;
    if (quiet) return 0;
    p->tty = isatty(STDERR_FILENO);
    /* terminal: redraw twice a second; elsewhere a line every few seconds. SALIENT_PROGRESS_SECONDS
     * sets the pace (a test hook: tests read the lines of short runs) */
    p->interval = p->tty ? 0.5 : CLI_PROGRESS_LINE_SECONDS;
    const char *env = getenv("SALIENT_PROGRESS_SECONDS");
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (!*end && v >= 0 && v <= 3600) p->interval = v;
    }
    p->last_draw = p->tty ? 0 : p->t0;   /* a terminal's bar at once; lines after the interval */
    if (pthread_mutex_init(&p->mu, NULL)) { p->quiet = 1; return -1; }
    if (pthread_cond_init(&p->cv, NULL)) { pthread_mutex_destroy(&p->mu); p->quiet = 1; return -1; }
    pthread_mutex_lock(&active_mu);
    active = p;
    pthread_mutex_unlock(&active_mu);
    if (pthread_create(&p->thread, NULL, ticker, p) == 0) p->ticking = 1;
    return 0;
}

void cli_progress_stage(cli_progress *p, const char *fmt, ...) {
    if (p->quiet) return;
    pthread_mutex_lock(&p->mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->stage, sizeof p->stage, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&p->mu);
}

void cli_progress_span(cli_progress *p, double base, double span) {
    if (p->quiet) return;
    pthread_mutex_lock(&p->mu);
    p->span_base = base;
    p->span = span;
    p->part = base;
    pthread_mutex_unlock(&p->mu);
}

void cli_progress_add(cli_progress *p, int64_t done, int64_t failed) {
    if (p->quiet) { p->done += done; p->failed += failed; return; }
    pthread_mutex_lock(&p->mu);
    p->done += done;
    p->failed += failed;
    p->part = p->span_base = p->span = 0;
    pthread_mutex_unlock(&p->mu);
}

/* Ctrl-C (SIGINT) or SIGTERM: noted here, so the run stops at the next pass (the callback below
 * cancels sal_explain) and closes its records and folder; a second signal ends the program at once
 * (the handler puts the default action back). */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    interrupted = sig;
    signal(sig, SIG_DFL);
}

void cli_interrupt_catch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_interrupted(void) { return interrupted; }

int cli_progress_sal(const sal_progress *sp, void *user) {
    cli_progress *p = user;
    if (interrupted) return 1;
    if (p->quiet || sp->total <= 0) return 0;
    pthread_mutex_lock(&p->mu);
    p->part = p->span_base + p->span * (double)sp->done / (double)sp->total;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void cli_progress_end(cli_progress *p) {
    if (p->quiet) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->ticking) pthread_join(p->thread, NULL);
    pthread_mutex_lock(&active_mu);
    if (active == p) active = NULL;
    pthread_mutex_unlock(&active_mu);
    if (p->on_line) { fputs("\r\033[K", stderr); fflush(stderr); }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    p->quiet = 1;   /* later calls do nothing */
}

void cli_progress_hold(void) {
    pthread_mutex_lock(&active_mu);
    if (!active) return;   /* active_mu stays held until cli_progress_release */
    pthread_mutex_lock(&active->mu);
    if (active->on_line) {
        fputs("\r\033[K", stderr);
        active->on_line = 0;
        active->last_draw = 0;   /* redrawn at the next tick, under the message */
    }
}

void cli_progress_release(void) {
    if (active) pthread_mutex_unlock(&active->mu);
    pthread_mutex_unlock(&active_mu);
}
