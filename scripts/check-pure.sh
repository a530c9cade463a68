#!/bin/sh
# check-pure.sh -- the pure rules stay pure (STYLE.md 1): the files named
# below include no header of a thread, socket, clock, the store, logging or
# another adapter, and call no such function.  Prints file:line: for each
# breach and exits 1 if there was any.  Run by `make lint`.
src=${SRC:-src}
pure="guard.c virt.c resync.c"
bad=0
for f in $pure; do
	if grep -nE '#include [<"](pthread|poll|time|unistd|fcntl|netdb|sys/socket|sys/time)\.h[>"]|#include "(log|service|publish|notify|metrics|http|sip|resync_engine|priv|fsutil)\.h"' "$src/$f" |
	   sed "s|^|$src/$f:|" | grep .; then
		bad=1
	fi
	if grep -nE '(^|[^A-Za-z0-9_])(time|clock_gettime|gettimeofday|pthread_[a-z_]+|store_[a-z_]+|svc_[a-z_]+|pub_[a-z_]+|log_[a-z_]+|socket|sendto|recvfrom|fopen|open)\(' "$src/$f" |
	   grep -vE '^[0-9]+:\s*(/?\*|//)' | sed "s|^|$src/$f:|" | grep .; then
		bad=1
	fi
done
[ "$bad" -eq 0 ] || echo "check-pure.sh: a pure file reaches outside its values (above)"
exit "$bad"
