// The console's only script: live updates of the alert inbox over
// Server-Sent Events. Pages work without it; this adds rows as they arrive.
//
// The table names its stream in `data-stream` and the newest event it was
// rendered with in `data-last-event-id`. The server sends `upsert` (a row's
// HTML, to insert at the top or replace in place) and `drop` (the id of a
// row that left the filtered list). EventSource reconnects by itself and
// sends `Last-Event-ID`, so nothing is missed after a cut.
(function () {
  "use strict";

  function rowFrom(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content.firstElementChild;
  }

  function setState(el, key, cls) {
    if (!el) return;
    el.textContent = el.dataset[key] || "";
    el.classList.remove("on", "off");
    if (cls) el.classList.add(cls);
  }

  function announce(row) {
    var box = document.getElementById("announce");
    if (!box || !row) return;
    var cells = row.querySelectorAll("td");
    var parts = [box.dataset.new || "New alert"];
    [1, 2, 3].forEach(function (i) {
      if (cells[i]) parts.push(cells[i].textContent.trim());
    });
    box.textContent = parts.join(" · ");
  }

  function follow(table) {
    var body = table.tBodies[0];
    var state = document.querySelector("[data-testid=live-state]");
    var url = table.dataset.stream;
    var after = table.dataset.lastEventId;
    if (after) url += (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(after);
    setState(state, "connecting");
    var source = new EventSource(url);
    source.onopen = function () { setState(state, "live", "on"); };
    source.onerror = function () { setState(state, "lost", "off"); };
    source.addEventListener("upsert", function (e) {
      var row = rowFrom(e.data);
      if (!row || !row.id) return;
      var old = document.getElementById(row.id);
      if (old) {
        old.replaceWith(row);
      } else {
        body.insertBefore(row, body.firstChild);
        row.classList.add("fresh");
        announce(row);
        var empty = document.getElementById("empty");
        if (empty) empty.remove();
      }
      table.dataset.lastEventId = e.lastEventId;
    });
    source.addEventListener("drop", function (e) {
      var old = document.getElementById(e.data);
      if (old) old.remove();
      table.dataset.lastEventId = e.lastEventId;
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function start() {
    if (!window.EventSource) return;
    document.querySelectorAll("table[data-stream]").forEach(follow);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
