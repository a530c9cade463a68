/*
 * metrics.h -- process-wide counters and latency histograms, exposed as
 * Prometheus text at GET /metrics (SPEC 7).
 *
 * Everything is lock-free: counters and histogram buckets are relaxed
 * atomics, so any thread may record at any time without waiting, and a
 * scrape reads a slightly moving (never torn per value) picture.
 * Histograms have fixed buckets (1 µs .. 70 s, six per decade) plus
 * an exact count, sum and maximum; quantiles are estimated from the
 * buckets the way Prometheus' histogram_quantile does (linear within a
 * bucket), so they are accurate to the bucket width (< 50 %).
 *
 * The registry (metrics_inc, metrics_observe, ...) is the one global state
 * of the module: metrics are an edge concern, the pure core never calls it.
 * `struct metrics_hist` is also usable on its own (tests, tools).
 *
 * Move timing (SPEC 8: "*30 move, from request received to the last
 * changed file published and the first NOTIFY sent, the code hash
 * excluded").  A move is followed on the thread that serves the request:
 *   api_pbx    metrics_move_begin()       request received
 *   service    metrics_move_hash(ns)      time of the Argon2id verify
 *   publish    metrics_move_published()   after the change hook published
 *                                         (in memory; no TFTP root)
 *   api_pbx    metrics_move_end(changed)  answer ready
 * The resync module stamps its queued work with metrics_move_stamp() (0
 * when the change is not a *30 move on this thread) and, when it hands the
 * first NOTIFY of that change to the socket, calls
 * metrics_move_notified(stamp) from any thread.  All of these are cheap
 * and cannot fail.
 */
#ifndef HD_METRICS_H
#define HD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define METRICS_BUCKETS 48 /* finite upper bounds; one more bucket is +Inf */

/* Upper bounds of the buckets, in nanoseconds, increasing. */
extern const uint64_t metrics_bounds_ns[METRICS_BUCKETS];

struct metrics_hist {
	_Atomic uint64_t bucket[METRICS_BUCKETS + 1]; /* per bucket, not cumulative */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
	_Atomic uint64_t max_ns;
};

/* Records one observation.  Cannot fail; any thread. */
void metrics_hist_observe(struct metrics_hist *h, uint64_t ns);
/* Estimated q-quantile (0 <= q <= 1) in nanoseconds; 0 when empty.  An
 * estimate above the exact maximum is clamped to it. */
uint64_t metrics_hist_quantile(const struct metrics_hist *h, double q);
/* Zeroes every value (not atomic as a whole: for tests and tools). */
void metrics_hist_reset(struct metrics_hist *h);

/* A monotonic clock in nanoseconds. */
uint64_t metrics_now_ns(void);
/* Any clock in nanoseconds (a thread's CPU clock: pthread_getcpuclockid),
 * 0 when it cannot be read (a thread that ended; a thread's CPU clock
 * also reads 0 until the thread first runs). */
uint64_t metrics_clock_ns(clockid_t clock);

/* ---- the registry ------------------------------------------------------ */

enum metrics_counter {
	METRICS_STAR30_REQUESTS,  /* POST /pbx/v1/star30 handled */
	METRICS_MOVES,            /* *30 that moved or returned an extension */
	METRICS_DEVICES_PUBLISHED, /* devices handed to the publisher by changes */
	METRICS_NOTIFY_FIRST,     /* moves whose first NOTIFY was sent */
	METRICS_CODE_CHECKS,      /* secret codes verified against a hash (no dummies) */
	METRICS_MOVE_REHEARSALS,  /* moves with a code rehearsed near their hash's end */
	/* refused authentications by kind, in enum authlog_kind order
	 * (authlog.h): one family, label kind */
	METRICS_AUTH_REFUSED,
	METRICS_AUTH_REFUSED_LAST = METRICS_AUTH_REFUSED + 8,
	METRICS_THROTTLE_MISSES,  /* provisioning misses counted by the throttle */
	METRICS_THROTTLE_BLOCKS,  /* sources blocked after repeated misses */
	/* answers to phones' downloads by status class: 1xx .. 5xx, one family */
	METRICS_DOWNLOADS_1XX,
	METRICS_DOWNLOADS_5XX = METRICS_DOWNLOADS_1XX + 4,
	METRICS_NOTIFY_SENT,      /* resync NOTIFYs handed to the socket */
	METRICS_NOTIFY_ANSWERED,  /* ... answered with a 2xx */
	METRICS_NOTIFY_FAILED,    /* ... refused, timed out or not sendable */
	METRICS_CODE_LOCKOUTS,    /* (device, extension) pairs locked out */
	METRICS_STORE_ERRORS,     /* store calls that failed (not conflicts) */
	METRICS_RELOADS_OK,       /* SIGHUP reloads applied ... */
	METRICS_RELOADS_REFUSED,  /* ... and refused (same family, label result) */
	/* move webhook attempts by result, one family, label result */
	METRICS_WEBHOOK_DELIVERED, /* rows the PBX accepted (2xx) */
	METRICS_WEBHOOK_FAILED,    /* attempts without a 2xx (retried) */
	METRICS_WEBHOOK_DROPPED,   /* rows given up after [pbx] move_webhook_keep */
	METRICS_DEVICE_RENDERS,   /* renders of a device's files (every file of it) */
	METRICS_FILES_DROPPED,    /* devices whose files left memory once written */
	METRICS_FILES_LOADED,     /* devices whose files were loaded back from the root */
	METRICS_COUNTER_N
};

enum metrics_histogram {
	METRICS_MOVE,             /* request -> answer, hash excluded (publishing
	                             runs inside, synchronously) */
	METRICS_MOVE_PUBLISHED,   /* request -> last changed file published */
	METRICS_MOVE_NOTIFY,      /* request -> first NOTIFY handed to the socket */
	METRICS_CODE_VERIFY,      /* one Argon2id verify (real or dummy) */
	METRICS_PUBLISH,          /* one change hook call: render + publish */
	METRICS_HISTOGRAM_N
};

enum metrics_gauge {
	METRICS_STARTUP_SECONDS,  /* process start -> listening (ms precision) */
	/* devices by resync state, one family, label sync: none (never
	 * queued), pending, notified, synced, stale */
	METRICS_DEVICES_NONE,
	METRICS_DEVICES_PENDING,
	METRICS_DEVICES_NOTIFIED,
	METRICS_DEVICES_SYNCED,
	METRICS_DEVICES_STALE,
	METRICS_WEBHOOK_BACKLOG,  /* move webhook rows waiting in the outbox */
	METRICS_NOTIFY_IN_FLIGHT, /* resync NOTIFY transactions not ended yet */
	METRICS_GAUGE_N
};

void metrics_inc(enum metrics_counter c, uint64_t n);
/* Sets a counter read from elsewhere (a total kept by its owner, e.g. the
 * store's error count); the caller keeps it monotonic. */
void metrics_counter_set(enum metrics_counter c, uint64_t v);
/* Counts one answer to a phone's download by its status class. */
void metrics_download(int status);
/* The version shown by hotdeskd_build_info (a static string, not copied).
 * Call before serving. */
void metrics_set_build(const char *version);
uint64_t metrics_counter(enum metrics_counter c);
void metrics_observe(enum metrics_histogram h, uint64_t ns);
/* The registry's histogram (for reading; never NULL for a valid id). */
const struct metrics_hist *metrics_histogram(enum metrics_histogram h);
void metrics_gauge_set(enum metrics_gauge g, double v);

/* ---- move timing (see the top of this file) ---------------------------- */

void metrics_move_begin(void);
void metrics_move_hash(uint64_t ns);
uint64_t metrics_move_stamp(void);
void metrics_move_published(void);
/* The TFTP writer wrote the last file of the move stamped stamp (any
 * thread): observes request received -> last file published. */
void metrics_move_published_at(uint64_t stamp);
void metrics_move_end(bool changed);
void metrics_move_notified(uint64_t stamp);

/* ---- exposition -------------------------------------------------------- */

/*
 * The Prometheus text format (version 0.0.4) of every metric, plus the
 * process's resident memory (process_resident_memory_bytes and the peak,
 * hotdeskd_resident_memory_peak_bytes, read from /proc/self/status).
 * Returns a malloc'd NUL-terminated string (caller frees) and its length,
 * or NULL when out of memory.
 */
char *metrics_render(size_t *len);

/*
 * HTTP handler for GET/HEAD /metrics.  arg: NULL (no authentication: the
 * figures reveal no secret and no name), or a `const char *` bearer token
 * that requests must present (401 otherwise).  Other methods: 405; other
 * paths under the route: 404.
 */
struct http_request;
struct http_response;
void metrics_http_handle(void *arg, const struct http_request *req,
                         struct http_response *res);

#endif
