/*
 * test_service_ckpt.c -- when the service copies the database's log back
 * (svc_checkpoint, the daemon's once-a-second tick).
 *
 * A service runs on a database file in a temporary directory.  Whether a
 * tick checkpointed is seen in the log itself: a commit after a checkpoint
 * that copied every frame back starts the log again from its beginning
 * (few frames), a commit after none adds to it.  Checked: a tick that
 * follows commits does not checkpoint a short log; a tick with nothing
 * committed since the one before does; a log past SVC_CKPT_FRAMES is
 * checkpointed even while commits go on.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "service.h"
#include "store.h"
#include "testutil.h"
#include "world.h"

static char *dir;

static void
teardown(void)
{
	if (dir != NULL)
		tu_rmtree(dir);
	dir = NULL;
}

TestSuite(ckpt, .fini = teardown, .timeout = 120);

/* A service on a new database file in a directory of its own. */
static struct svc *
open_svc(void)
{
	char err[512], path[512];
	struct svc_opts o = { .sql_dir = "sql", .hash_ops = 1, .hash_mem = 8192,
	                      .code_min_len = 4 };
	struct svc *s;

	dir = tu_tmpdir();
	cr_assert_not_null(dir);
	cr_assert_lt((size_t)snprintf(path, sizeof path, "%s/hd.db", dir), sizeof path);
	o.db_path = path;
	s = svc_open(&o, err, sizeof err);
	cr_assert_not_null(s, "svc_open: %s", err);
	return s;
}

static int
get_frames(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	*(long *)arg = store_wal_frames(st);
	return 0;
}

/* One commit (an event of its own); returns the log's frames after it. */
static long
commit(struct svc *s)
{
	long frames = -1;

	svc_event(s, "test.tick", 0, NULL, NULL, NULL);
	cr_assert_eq(svc_locked(s, get_frames, &frames), 0);
	cr_assert_gt(frames, 0);
	return frames;
}

Test(ckpt, only_a_quiet_tick_checkpoints_a_short_log)
{
	struct svc *s = open_svc();
	long a, b, c;

	svc_checkpoint(s); /* commits since the start: none now */
	a = commit(s);
	svc_checkpoint(s); /* a commit since the tick before: the log grows on */
	b = commit(s);
	cr_assert_gt(b, a, "the log started again (%ld frames, %ld before): a busy tick checkpointed",
	             b, a);
	svc_checkpoint(s); /* commits since the tick before */
	svc_checkpoint(s); /* none: the log stopped growing, copied back */
	c = commit(s);
	cr_assert_lt(c, b, "the log did not start again (%ld frames, %ld before)", c, b);
	svc_close(s);
}

Test(ckpt, a_long_log_is_checkpointed_while_commits_go_on)
{
	struct svc *s = open_svc();
	long prev = commit(s), now, peak = 0;
	int i;

	/* a commit before every tick: only the log's length decides */
	for (i = 0; i < 4 * SVC_CKPT_FRAMES; i++) {
		svc_checkpoint(s);
		now = commit(s);
		if (now < prev)
			break;
		peak = now;
		prev = now;
	}
	cr_assert_lt(i, 4 * SVC_CKPT_FRAMES, "the log never started again (%ld frames)", prev);
	cr_assert_geq(peak, SVC_CKPT_FRAMES, "checkpointed at %ld frames", peak);
	svc_close(s);
}
