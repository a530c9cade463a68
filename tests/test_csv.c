/*
 * test_csv.c -- csv.c: RFC 4180 records with their line numbers, the
 * errors a spreadsheet never produces (with line and column), and the
 * writer's quoting round-tripping through the reader; import.c: the
 * header, each cell's form, and the errors naming line and column.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "csv.h"
#include "import.h"

static int
parse(const char *s, struct csv *c, char *err)
{
	return csv_parse(s, strlen(s), c, err, 200);
}

Test(csv, records_fields_and_lines)
{
	struct csv c;
	char err[200] = "";

	cr_assert_eq(parse("\xef\xbb\xbf" "a,b,c\r\n1,\"x, \"\"y\"\"\",\r\n\r\n2,\"multi\nline\",z", &c,
	                   err), 0, "%s", err);
	cr_assert_eq(c.n, 3);
	cr_assert_eq(c.rec[0].n, 3);
	cr_assert_str_eq(c.rec[0].fields[0], "a");
	cr_assert_eq(c.rec[1].line, 2);
	cr_assert_str_eq(c.rec[1].fields[1], "x, \"y\"");
	cr_assert_str_eq(c.rec[1].fields[2], "");
	cr_assert_eq(c.rec[2].line, 4, "the empty line 3 is skipped");
	cr_assert_str_eq(c.rec[2].fields[1], "multi\nline");
	cr_assert_str_eq(c.rec[2].fields[2], "z", "last record without a line end");
	csv_free(&c);
	csv_free(&c); /* safe twice */
}

Test(csv, errors_name_line_and_column)
{
	static const struct { const char *in, *err; } cases[] = {
		{ "a,b\n1,x\"y\n", "line 2, column 2: quote inside an unquoted field" },
		{ "a,b\n1,\"x\"y\n", "line 2, column 2: text after a closing quote" },
		{ "a,b\n\n1,\"open\n", "line 3, column 2: quote not closed" },
		{ "a\n\xff\n", "line 2, column 1: invalid UTF-8" },
		{ "a\n\xc0\xaf\n", "line 2, column 1: invalid UTF-8" },
		{ "a,b\r1\n", "line 1, column 2: carriage return without line feed" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct csv c;
		char err[200] = "";

		cr_assert_eq(parse(cases[i].in, &c, err), -1, "case %zu", i);
		cr_assert_str_eq(err, cases[i].err, "case %zu", i);
		cr_assert_eq(c.n, 0);
		cr_assert_null(c.arena);
	}
}

Test(csv, nul_and_limits)
{
	struct csv c;
	char err[200] = "", big[CSV_MAX_FIELD + 10], many[3 * CSV_MAX_FIELDS + 10];

	cr_assert_eq(csv_parse("a\nb\0c\n", 6, &c, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "line 2, column 1: NUL byte");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(parse(big, &c, err), -1);
	cr_assert_str_eq(err, "line 1, column 1: field too long");
	many[0] = '\0';
	for (int i = 0; i <= CSV_MAX_FIELDS; i++)
		strcat(many, "a,");
	cr_assert_eq(parse(many, &c, err), -1);
	cr_assert(strstr(err, "too many fields") != NULL, "%s", err);
}

Test(csv, writer_round_trips)
{
	static const char *const v[] = { "plain", "a,b", "say \"hi\"", "two\r\nlines", " pad ",
	                                 "", NULL, "é" };
	struct csv_out o = { 0 };
	struct csv c;
	char err[200] = "";

	for (size_t i = 0; i < 8; i++)
		csv_put(&o, v[i]);
	csv_endl(&o);
	csv_put(&o, "x");
	csv_endl(&o);
	cr_assert_eq(o.failed, 0);
	cr_assert_str_eq(o.buf, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\r\nlines\",\" pad \",,,é\r\nx\r\n");
	cr_assert_eq(csv_parse(o.buf, o.len, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.n, 2);
	cr_assert_eq(c.rec[0].n, 8);
	for (size_t i = 0; i < 8; i++)
		cr_assert_str_eq(c.rec[0].fields[i], v[i] ? v[i] : "");
	cr_assert_eq(c.rec[1].line, 3);
	csv_free(&c);
	csv_out_free(&o);
}

/* A first field that begins with a byte-order mark is quoted: unquoted at
 * the start of a document, the reader would take the mark for the file's
 * own and drop it. */
Test(csv, leading_byte_order_mark_survives)
{
	struct csv_out o = { 0 };
	struct csv c;
	char err[200] = "";

	csv_put(&o, "\xef\xbb\xbf" "Extn");
	csv_put(&o, "3");
	csv_endl(&o);
	cr_assert_str_eq(o.buf, "\"\xef\xbb\xbf" "Extn\",3\r\n");
	cr_assert_eq(csv_parse(o.buf, o.len, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.n, 1);
	cr_assert_str_eq(c.rec[0].fields[0], "\xef\xbb\xbf" "Extn");
	csv_free(&c);
	csv_out_free(&o);
}

static int
rows(const char *text, struct csv *c, struct import_rows *r, char *err)
{
	if (csv_parse(text, strlen(text), c, err, 200) != 0)
		return -2;
	return import_rows_from_csv(c, 0, r, err, 200);
}

Test(import, header_any_order_and_case)
{
	struct csv c;
	struct import_rows r;
	char err[200] = "";

	cr_assert_eq(rows("MAC, Extension ,Allow_Virtualization,label\n"
	                  "00-04-F2-AA-BB-CC,101,Yes,-\n,102,no,\n", &c, &r, err), 0, "%s", err);
	cr_assert_eq(r.n, 2);
	cr_assert_str_eq(r.v[0].mac, "0004f2aabbcc");
	cr_assert_str_eq(r.v[0].cell[IMP_EXTENSION], "101");
	cr_assert_eq(r.v[0].allow_virt, 1);
	cr_assert_str_eq(r.v[0].cell[IMP_LABEL], "", "'-' clears");
	cr_assert_null(r.v[1].cell[IMP_MAC]);
	cr_assert_null(r.v[1].cell[IMP_LABEL], "empty keeps");
	cr_assert_eq(r.v[1].allow_virt, 0);
	cr_assert_eq(r.v[1].line, 3);
	import_rows_free(&r);
	csv_free(&c);
}

Test(import, cell_errors_name_line_and_column)
{
	static const struct { const char *in, *err; } cases[] = {
		{ "extension,colour\n1,red\n", "line 1, column 2: unknown column" },
		{ "extension,EXTENSION\n", "line 1, column 2: column extension given twice" },
		{ "label\nx\n", "line 1: a column extension or mac is required" },
		{ "extension,mac\n12a,\n", "line 2, column 1 (extension): must be digits" },
		{ "extension,mac\n1,0004f2\n", "line 2, column 2 (mac): not a MAC address" },
		{ "mac,profile\n0004f2000001,nokia\n", "line 2, column 2 (profile): unknown vendor profile" },
		{ "extension,allow_virtualization\n1,perhaps\n",
		  "line 2, column 2 (allow_virtualization): must be yes or no" },
		{ "extension,sip_user\n1,a b\n", "line 2, column 2 (sip_user): must be printable ASCII" },
		{ "extension,display_name\n1,\"a\tb\"\n", "line 2, column 2 (display_name): has control" },
		{ "extension,profile\n1,yealink\n", "line 2, column 2 (profile): a phone column needs a mac" },
		{ "mac,display_name\n0004f2000001,x\n",
		  "line 2, column 2 (display_name): an extension column needs an extension" },
		{ "extension,mac\n1\n", "line 2, column 2: 1 fields where the header has 2" },
		{ "extension,mac\n,\n", "line 2: neither extension nor mac given" },
		{ "extension,secret_code\n1,12345678901234567890123456789012345\n",
		  "line 2, column 2 (secret_code): too long" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct csv c;
		struct import_rows r;
		char err[200] = "";

		cr_assert_eq(rows(cases[i].in, &c, &r, err), -1, "case %zu", i);
		cr_assert(strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
		          "case %zu: got '%s', want '%s...'", i, err, cases[i].err);
		cr_assert_null(r.v);
		csv_free(&c);
	}
}

/* Every module fills a caller's error buffer the same way (errbuf.h): a
 * message cut by a small buffer keeps its front (the position) and ends
 * in "...". */
Test(import, cut_messages_keep_the_position_and_show_the_cut)
{
	struct import_row row = { .line = 12 };
	char small[24], big[200];

	row.col_of[IMP_EXTENSION] = 3;
	import_cell_error(&row, IMP_EXTENSION, "must be digits", big, sizeof(big));
	cr_assert_str_eq(big, "line 12, column 3 (extension): must be digits");
	import_cell_error(&row, IMP_EXTENSION, "must be digits", small, sizeof(small));
	cr_assert_str_eq(small, "line 12, column 3 (e...");

	struct csv c;

	cr_assert_eq(csv_parse("a,b\n1,x\"y\n", 11, &c, small, 16), -1);
	cr_assert_str_eq(small, "line 2, colu...");
	csv_free(&c);
}

Test(import, row_limit)
{
	struct csv c;
	struct import_rows r;
	char err[200] = "";
	const char *t = "extension\n1\n2\n3\n";

	cr_assert_eq(csv_parse(t, strlen(t), &c, err, sizeof(err)), 0);
	cr_assert_eq(import_rows_from_csv(&c, 2, &r, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "line 4: more than 2 rows");
	cr_assert_eq(import_rows_from_csv(&c, 3, &r, err, sizeof(err)), 0);
	import_rows_free(&r);
	csv_free(&c);
}
