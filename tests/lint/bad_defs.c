/* bad_defs.c -- not built: two definitions scripts/check-defs.sh must
 * report (`make lint` fails unless it reports exactly these two). */
static int one_line(int a) { return a; }

static int
good(int a)
{
	return a;
}

static const char *type_and_name(int a,
                                 int b)
{
	return a > b ? "a" : "b";
}
