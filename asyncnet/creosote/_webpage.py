"""The web view's page, script and style (static text; message text never goes in here)."""

from __future__ import annotations

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>creosote bucket</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>Mr. Creosote's bucket</h1>
<p>Debug messages arriving on <code id="where">{where}</code>, newest first.
<span id="status" data-state="connecting">connecting&hellip;</span></p>
<ol id="messages"></ol>
<script src="/app.js"></script>
</body>
</html>
"""

SCRIPT = """"use strict";
// Message text is untrusted: it only ever goes into the page as textContent.
const list = document.getElementById("messages");
const status = document.getElementById("status");
const MAX_LINES = 500;

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

const source = new EventSource("/events");
source.addEventListener("open", () => {
  status.textContent = "live";
  status.dataset.state = "live";
});
source.addEventListener("error", () => {
  status.textContent = "reconnecting\\u2026";
  status.dataset.state = "down";
});
source.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  const line = document.createElement("li");
  line.append(span("time", message.time), " ", span("sender", message.sender), " ",
              span("text", message.text));
  if (message.notes) {
    line.append(" ", span("notes", message.notes));
  }
  list.prepend(line);
  while (list.children.length > MAX_LINES) {
    list.lastElementChild.remove();
  }
});
"""

STYLE = """body { font-family: sans-serif; margin: 1em 2em; }
#status[data-state="live"] { color: green; }
#status[data-state="down"] { color: firebrick; }
ol { list-style: none; padding: 0; font-family: monospace; }
li { white-space: pre-wrap; word-break: break-all; border-bottom: 1px solid #eee; }
.time { color: #777; }
.sender { color: #36c; }
.notes { color: firebrick; }
"""
