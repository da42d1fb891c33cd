/* Refresh a run that is still in progress; stop at its first terminal status.
 *
 * The terminal statuses come from the server (executions.statuses.TERMINAL, rendered with
 * json_script), never from a list kept here. The page's parts are re-rendered by the
 * server (the JSON status view) and swapped in place.
 */
(function () {
  "use strict";
  var root = document.getElementById("run");
  var terminalNode = document.getElementById("cv-terminal-statuses");
  if (!root || !terminalNode) {
    return;
  }
  var terminal = new Set(JSON.parse(terminalNode.textContent));
  var url = root.dataset.statusUrl;
  var interval = parseInt(root.dataset.refreshMs, 10) || 2000;
  var failures = 0;
  var timer = null;
  var parts = {
    status_html: "run-status",
    outcome_html: "run-outcome",
    actions_html: "run-actions",
    steps_html: "run-steps",
    io_html: "run-io"
  };

  function note(text) {
    var node = document.getElementById("run-refresh-note");
    if (node) {
      node.textContent = text;
    }
  }

  function stop(text) {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    root.dataset.refreshing = "false";
    note(text || "");
  }

  function schedule(delay) {
    timer = setTimeout(poll, delay);
  }

  function apply(data) {
    Object.keys(parts).forEach(function (key) {
      var node = document.getElementById(parts[key]);
      if (node && typeof data[key] === "string") {
        node.innerHTML = data[key];
      }
    });
    root.dataset.status = data.status;
  }

  function poll() {
    timer = null;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 403 || response.status === 404) {
          throw new Error("gone");
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        apply(data);
        if (terminal.has(data.status)) {
          stop("");
        } else {
          schedule(interval);
        }
      })
      .catch(function (error) {
        failures += 1;
        if (error.message === "gone" || failures >= 10) {
          stop("Refreshing stopped: reload the page to try again.");
        } else {
          schedule(Math.min(interval * Math.pow(2, failures), 30000));
        }
      });
  }

  if (terminal.has(root.dataset.status)) {
    stop("");
  } else {
    root.dataset.refreshing = "true";
    schedule(interval);
  }
})();
