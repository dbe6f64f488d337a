"""The HTML report's page frame: style, the column-sorting script and the document shell.

Self-contained by construction: the Content-Security-Policy lets the page load nothing but inline
style, inline script and ``data:`` images, so a browser refuses (and logs) any outside request.
"""

from __future__ import annotations

from html import escape

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.meta { color: #666; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; background: #f3f3f3; white-space: nowrap; }
table.sortable th:hover { background: #e6eefc; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-weight: 600; margin-bottom: 0.3em; }
details { margin: 0.25em 0; border: 1px solid #e3e3e3; border-radius: 4px; padding: 0.2em 0.6em; }
details[open] { background: #fcfcfc; } summary { cursor: pointer; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; max-height: 30em; }
"""

# Click a header: sort that column ascending, click again: descending. Cells with data-v sort as numbers
# (missing values last), others as text. A #run-… link opens the run's <details>.
SCRIPT = """
function cellKey(td) {
  if (td.dataset.v === undefined) return td.textContent.trim();
  return td.dataset.v === "" ? NaN : parseFloat(td.dataset.v);
}
function compareCells(a, b, asc) {
  const x = cellKey(a), y = cellKey(b);
  if (typeof x === "number" && typeof y === "number") {
    if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
    return asc ? x - y : y - x;
  }
  const d = String(x).localeCompare(String(y), undefined, {numeric: true});
  return asc ? d : -d;
}
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    const table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    const asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) { return compareCells(a.cells[col], b.cells[col], asc); });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
function openHash() {
  const el = location.hash ? document.getElementById(location.hash.slice(1)) : null;
  if (el && el.tagName === "DETAILS") { el.open = true; el.scrollIntoView(); }
}
window.addEventListener("hashchange", openHash);
openHash();
"""


def page(title: str, body: str) -> str:
    """The whole document around ``body`` (already HTML)."""
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        "<link rel='icon' href='data:,'>\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
