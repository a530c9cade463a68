/*
 * log.c -- levelled logging to stderr or syslog.
 *
 * Owns the process-wide log settings (ident, level, destination).  The
 * level is an atomic so that a reload may change it while worker threads
 * log; ident and destination are set by log_init() before threads start.
 *
 * Invariant: one message = one write(2) to stderr (or one syslog(3) call),
 * of at most LOG_LINE_MAX bytes, which is below PIPE_BUF, so concurrent
 * messages never interleave even when stderr is a pipe.
 *
 * stderr line format:
 *   2025-01-31T12:00:00.123Z hotdeskd[4242]: warn: message
 * and when stderr is the journal (log_init saw $JOURNAL_STREAM match it):
 *   <4>warn: message
 * (the journal takes the syslog priority from "<N>" and adds time and
 * ident itself).
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_IDENT_MAX 64
/* timestamp + ident[pid] + level + message + "...\n" */
#define LOG_LINE_MAX (LOG_MSG_MAX + LOG_IDENT_MAX + 96)

static char log_ident[LOG_IDENT_MAX] = "hotdeskd";
static atomic_int log_level = LOG_LEVEL_INFO;
static bool log_syslog;
static bool log_journal; /* stderr is the systemd journal */
static atomic_bool log_access_on;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int
clamp_level(int level)
{
	if (level < LOG_LEVEL_DEBUG)
		return LOG_LEVEL_DEBUG;
	if (level > LOG_LEVEL_ERROR)
		return LOG_LEVEL_ERROR;
	return level;
}

/* Whether $JOURNAL_STREAM ("dev:inode") is our stderr. */
static bool
stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *ident, int level, bool use_syslog)
{
	int n;

	if (ident == NULL || *ident == '\0')
		ident = "hotdeskd";
	n = snprintf(log_ident, sizeof(log_ident), "%s", ident);
	if (n < 0)
		log_ident[0] = '\0';
	/* a longer ident is simply cut: log_ident stays NUL-terminated */
	atomic_store(&log_level, clamp_level(level));
	if (log_syslog && !use_syslog)
		closelog();
	log_syslog = use_syslog;
	log_journal = stderr_is_journal();
	if (use_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(int level)
{
	atomic_store(&log_level, clamp_level(level));
}

int
log_get_level(void)
{
	return atomic_load(&log_level);
}

void
log_set_access(bool on)
{
	atomic_store(&log_access_on, on);
}

bool
log_access_enabled(void)
{
	return atomic_load(&log_access_on);
}

int
log_level_parse(const char *s)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < LOG_LEVEL_DEBUG || level > LOG_LEVEL_ERROR)
		return "?";
	return level_names[level];
}

static int
syslog_priority(int level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG:
		return LOG_DEBUG;
	case LOG_LEVEL_INFO:
		return LOG_INFO;
	case LOG_LEVEL_WARN:
		return LOG_WARNING;
	default:
		return LOG_ERR;
	}
}

/* Writes all of buf to fd, retrying on EINTR and short writes. */
static void
write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		buf += w;
		len -= (size_t)w;
	}
}

/*
 * Formats "<fmt...>[: strerror(err)]" into msg, which has room for
 * LOG_MSG_MAX bytes plus "..." and the NUL; marks a cut with "..." and
 * replaces control characters (but tab) by '?'.
 */
static void
format_message(char msg[LOG_MSG_MAX + 4], int err, const char *fmt, va_list ap)
{
	char ebuf[128];
	size_t len;
	bool cut;
	int n;

	n = vsnprintf(msg, LOG_MSG_MAX + 1, fmt, ap);
	if (n < 0) {
		memcpy(msg, "(bad log format)", sizeof("(bad log format)"));
		n = 0;
	}
	cut = (size_t)n > LOG_MSG_MAX;
	len = strlen(msg);
	if (err != 0 && !cut) {
		n = snprintf(msg + len, LOG_MSG_MAX + 1 - len, ": %s",
		             strerror_r(err, ebuf, sizeof(ebuf)));
		if (n < 0)
			msg[len] = '\0';
		else if ((size_t)n >= LOG_MSG_MAX + 1 - len)
			cut = true;
		len = strlen(msg);
	}
	if (cut) {
		memcpy(msg + len, "...", 4); /* len <= LOG_MSG_MAX */
		len += 3;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			msg[i] = '?';
	}
}

static void
log_emit(int level, int err, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX + 4];
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	int n;

	format_message(msg, err, fmt, ap);
	if (log_syslog) {
		syslog(syslog_priority(level), "%s", msg);
		return;
	}
	if (log_journal) {
		n = snprintf(line, sizeof(line), "<%d>%s: %s\n", syslog_priority(level),
		             log_level_name(level), msg);
		if (n > 0 && (size_t)n < sizeof(line))
			write_all(STDERR_FILENO, line, (size_t)n);
		return;
	}
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));
		ts.tv_nsec = 0;
	}
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s: %s\n",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	             tm.tm_sec, ts.tv_nsec / 1000000L, log_ident, (long)getpid(),
	             log_level_name(level), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		/* cannot happen given the sizes above; keep the line terminated */
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_all(STDERR_FILENO, line, (size_t)n);
}

#define LOG_BODY(level, with_errno)                                   \
	do {                                                          \
		int saved_errno = errno;                              \
		va_list ap;                                           \
		if ((level) < atomic_load(&log_level))                \
			break;                                        \
		va_start(ap, fmt);                                    \
		log_emit((level), (with_errno) ? saved_errno : 0, fmt, ap); \
		va_end(ap);                                           \
		errno = saved_errno;                                  \
	} while (0)

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, false);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, false);
}

void
log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, false);
}

void
log_error(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, false);
}

void
log_access(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	if (!atomic_load(&log_access_on))
		return;
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void
log_warn_errno(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, true);
}

void
log_error_errno(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, true);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatal_errno(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, saved_errno, fmt, ap);
	va_end(ap);
	exit(1);
}

char *
log_sanitize(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	size_t total = 0, room, pos = 0, piece;
	bool cut;

	if (outlen == 0)
		return out;
	if (in == NULL)
		in = "(null)";
	/* Pass 1: the escaped length, to know whether a cut is needed. */
	for (p = (const unsigned char *)in; *p != '\0'; p++)
		total += (*p == '\\') ? 2 : (*p >= 0x20 && *p < 0x7f) ? 1 : 4;
	cut = total > outlen - 1;
	room = cut ? (outlen - 1 > 3 ? outlen - 1 - 3 : 0) : outlen - 1;
	/* Pass 2: copy whole pieces while they fit. */
	for (p = (const unsigned char *)in; *p != '\0'; p++) {
		piece = (*p == '\\') ? 2 : (*p >= 0x20 && *p < 0x7f) ? 1 : 4;
		if (pos + piece > room)
			break;
		if (piece == 1) {
			out[pos++] = (char)*p;
		} else if (piece == 2) {
			out[pos++] = '\\';
			out[pos++] = '\\';
		} else {
			out[pos++] = '\\';
			out[pos++] = 'x';
			out[pos++] = hex[*p >> 4];
			out[pos++] = hex[*p & 0x0f];
		}
	}
	if (cut)
		for (int i = 0; i < 3 && pos < outlen - 1; i++)
			out[pos++] = '.';
	out[pos] = '\0';
	return out;
}
