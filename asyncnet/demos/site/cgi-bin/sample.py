#!/usr/bin/env python3
"""The tutorial's "Sample CGI Script", ported to Python 3 without the removed cgi module.

The original read the form with cgi.FieldStorage().getfirst() and reported errors
with cgitb; here the standard library's urllib.parse reads the same fields (from
the query string, or a form-encoded POST body on stdin), every value is HTML-escaped
before it goes into the page, and an error is a plain 500 (the details go to stderr,
which the server logs).
"""

import html
import os
import sys
import traceback
from urllib.parse import parse_qs

fields = ["subnum", "reviewer", "comments"]


def getfirst(form: dict[str, list[str]], name: str) -> str | None:
    """FieldStorage.getfirst: the first value of a field, or None."""
    values = form.get(name)
    return values[0] if values else None


def read_form() -> dict[str, list[str]]:
    """The submitted fields: the query string, plus a form-encoded POST body."""
    form = parse_qs(os.environ.get("QUERY_STRING", ""), max_num_fields=100)
    if os.environ.get("REQUEST_METHOD") == "POST":
        length = int(os.environ.get("CONTENT_LENGTH") or 0)
        body = sys.stdin.buffer.read(min(length, 1_000_000)).decode("utf-8", "replace")
        for name, values in parse_qs(body, max_num_fields=100).items():
            form.setdefault(name, []).extend(values)
    return form


try:
    form = read_form()
    vlist = []
    for f in fields:
        vlist.append("%s=%s" % (f, html.escape(str(getfirst(form, f)))))
    print(
        """Content-Type: text/html; charset=utf-8

<html><head><title>Hello!</title></head><body>
%s
</body></html>"""
        % "<br>".join(vlist)
    )
except Exception:
    traceback.print_exc()  # cgitb's job, done by the server: this goes to its log
    print("Status: 500 Internal Server Error\nContent-Type: text/plain\n\nThe script failed.")
