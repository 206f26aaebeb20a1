"""What every page carries besides its data: the content security policy, the stylesheet and
the script that draws the figures (plotly.js itself is inlined from the plotly wheel by the
renderer). The script reads the figures from the page's JSON element, wires "show in flame
graph" and frame clicks to the suspects table, and marks the body data-rendered when every chart
is drawn (what tests/integration/test_report_browser.py waits on)."""

# Nothing may be fetched: the policy makes the browser refuse it even if a chart tried.
CSP_META = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; connect-src 'none'\">"
)

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #f4f5f7; }
header { background: #1f2937; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 22px; }
header .meta { color: #cbd5e1; }
.meta { color: #666; font-size: 12px; margin: 2px 0; }
section.compare, section.run { background: #fff; margin: 12px; padding: 12px 16px; border-radius: 6px;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 0; }
main.runs { display: grid; grid-template-columns: repeat(var(--columns), minmax(0, 1fr)); }
h2 { font-size: 18px; margin: 4px 0; }
h3 { font-size: 15px; margin: 16px 0 4px; border-bottom: 1px solid #eee; }
.verdict { font-size: 13px; padding: 2px 8px; border-radius: 10px; margin-left: 8px; vertical-align: middle; }
.verdict.leak { background: #fde2e1; color: #a11; }
.verdict.ok { background: #dcf5e3; color: #17612f; }
.verdict.plain { background: #e5e7eb; color: #333; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
table.compare { width: auto; min-width: 520px; }
th, td { text-align: left; vertical-align: top; padding: 4px 6px; border-bottom: 1px solid #eee; }
table.compare td:not(:first-child), table.compare th { text-align: right; }
table.compare td:first-child { color: #444; }
td.traces code, td.holder code { word-break: break-all; }
td.traces a { margin-right: 4px; }
tr.suspect.active { background: #fff7d6; }
td.callpath button { display: block; margin: 4px 0; font-size: 11px; cursor: pointer; }
details summary { cursor: pointer; color: #555; }
ol, ul { margin: 2px 0; padding-left: 18px; }
.file { color: #777; }
.empty { color: #555; font-style: italic; }
.note { color: #8a5a00; font-size: 12px; }
"""

JS = """
(function () {
  var figures = JSON.parse(document.getElementById("leaktrace-figures").textContent);
  var config = {displaylogo: false, responsive: true, showLink: false, showSendToCloud: false};
  function activate(run, rank) {
    document.querySelectorAll("#" + run + " tr.suspect").forEach(function (row) {
      row.classList.toggle("active", row.id === run + "-suspect-" + rank);
    });
  }
  var drawn = Object.keys(figures).map(function (id) {
    var fig = figures[id];
    return Plotly.newPlot(id, fig.data, fig.layout, config).then(function (div) {
      if (id.slice(-6) === "-flame") {
        div.on("plotly_icicleclick", function (event) {
          var rank = event.points && event.points[0] && event.points[0].customdata;
          if (rank) { activate(id.slice(0, -6), rank); }
        });
      }
      return div;
    });
  });
  document.querySelectorAll("button[data-focus]").forEach(function (button) {
    button.addEventListener("click", function () {
      var div = document.getElementById(button.dataset.flame);
      Plotly.restyle(div, {level: button.dataset.focus}, [0]);
      activate(button.dataset.flame.slice(0, -6), button.dataset.rank);
      div.scrollIntoView({block: "center"});
    });
  });
  Promise.all(drawn).then(function () {
    document.body.setAttribute("data-rendered", String(drawn.length));
  }, function (error) {
    document.body.setAttribute("data-render-error", String(error));
  });
})();
"""
