// Keyboard labelling for `rationales review` (no inline script: the page's CSP allows only this file).
(function () {
  "use strict";
  var stateEl = document.getElementById("review-state");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var statusEl = document.getElementById("status");

  function say(text, bad) {
    if (!statusEl) return;
    statusEl.textContent = text;
    statusEl.className = bad ? "bad" : "";
  }

  // search box: "/" focuses it on list pages
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "/" && !typing(ev) && document.getElementById("search")) {
      ev.preventDefault();
      document.getElementById("search").focus();
    }
  });

  function typing(ev) {
    var t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  if (!stateEl) return;
  var state = JSON.parse(stateEl.textContent);
  var steps = Array.prototype.slice.call(document.querySelectorAll(".step[data-index]"));
  var current = 0;
  var undo = [];
  var chain = Promise.resolve();  // requests run one after another, in key order

  function focusStep(i) {
    if (!steps.length) return;
    current = Math.max(0, Math.min(steps.length - 1, i));
    steps.forEach(function (s, k) { s.classList.toggle("current", k === current); });
    steps[current].focus({preventScroll: true});
    steps[current].scrollIntoView({block: "nearest"});
  }

  function cls(v) {
    if (v === null || v === undefined) return "vabsent";
    return v > 0 ? "vpos" : (v < 0 ? "vneg" : "vneu");
  }
  function txt(v) {
    if (v === null || v === undefined) return "–";
    return v > 0 ? "+1" : (v < 0 ? "-1" : "0");
  }

  function show(labels, progress) {
    var n = 0;
    steps.forEach(function (s) {
      var v = labels[s.dataset.index];
      if (v === undefined) v = null;
      if (v !== null) n += 1;
      s.dataset.human = v === null ? "" : String(v);
      var h = s.querySelector('[data-role="human"]');
      h.className = "human " + cls(v);
      h.querySelector("b").textContent = txt(v);
      var sq = s.querySelector(".human-sq");
      if (sq) sq.className = "sq human-sq " + (v === null ? "vabsent" : cls(v));
      s.querySelectorAll(".agree").forEach(function (a) { a.remove(); });
    });
    var mark = document.querySelectorAll("#fulltext mark[data-step]");
    mark.forEach(function (m) { m.classList.toggle("humanlabelled", labels[m.dataset.step] !== undefined && labels[m.dataset.step] !== null); });
    document.getElementById("nlabelled").textContent = String(n);
    if (progress) {
      document.getElementById("usteps").textContent = String(progress.steps);
      document.getElementById("ufull").textContent = String(progress.rationales_full);
    }
  }

  function showAgreement(agreement) {
    var table = document.getElementById("agreement");
    if (!table) return;
    while (table.rows.length > 1) table.deleteRow(1);
    var kinds = Object.keys(agreement || {});
    if (!kinds.length) {
      var row = table.insertRow();
      var c = row.insertCell(); c.colSpan = 3; c.className = "meta"; c.textContent = "none yet";
      return;
    }
    kinds.forEach(function (k) {
      var row = table.insertRow();
      row.insertCell().textContent = k;
      row.insertCell().textContent = String(agreement[k].agree);
      row.insertCell().textContent = String(agreement[k].n);
    });
  }

  function post(body, remember) {
    chain = chain.then(function () {
      body.rationale_id = state.rid;
      return fetch("/api/label", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: JSON.stringify(body)
      }).then(function (resp) {
        return resp.json().then(function (data) {
          if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
          return data;
        });
      }).then(function (data) {
        if (remember) undo.push(data.previous);
        state.labels = data.labels;
        show(data.labels, data.progress);
        showAgreement(data.agreement);
        say("saved");
        document.body.dataset.pending = String(Math.max(0, Number(document.body.dataset.pending || 1) - 1));
      }).catch(function (err) {
        say("not saved: " + err.message, true);
        document.body.dataset.pending = String(Math.max(0, Number(document.body.dataset.pending || 1) - 1));
      });
    });
    document.body.dataset.pending = String(Number(document.body.dataset.pending || 0) + 1);
    return chain;
  }

  function label(v) {
    if (!steps.length) return;
    var labels = {};
    labels[steps[current].dataset.index] = v;
    post({op: "set", labels: labels}, true);
    if (v !== null && current < steps.length - 1) focusStep(current + 1);  // labelled: on to the next step
  }
  function firstError() {
    if (!steps.length) return;
    post({op: "first_error", step: Number(steps[current].dataset.index),
          after: document.getElementById("after-mode").value}, true);
  }
  function allCorrect() { post({op: "all_correct"}, true); }
  function undoLast() {
    var prev = undo.pop();
    if (!prev) { say("nothing to undo"); return; }
    post({op: "set", labels: prev}, false);
  }

  steps.forEach(function (s, k) {
    s.addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-label]");
      focusStep(k);
      if (!b) return;
      var l = b.dataset.label;
      if (l === "clear") label(null);
      else if (l === "first") firstError();
      else label(Number(l));
    });
  });
  var ac = document.getElementById("all-correct");
  if (ac) ac.addEventListener("click", allCorrect);
  var am = document.getElementById("after-mode");
  if (am) am.addEventListener("change", function () { focusStep(current); });  // keys go back to the steps
  var ub = document.getElementById("undo");
  if (ub) ub.addEventListener("click", undoLast);

  document.addEventListener("keydown", function (ev) {
    if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var k = ev.key;
    var handled = true;
    if (k === "j" || k === "ArrowDown") focusStep(current + 1);
    else if (k === "k" || k === "ArrowUp") focusStep(current - 1);
    else if (k === "1" || k === "+") label(1);
    else if (k === "0") label(0);
    else if (k === "-" || k === "2") label(-1);
    else if (k === "x" || k === "Backspace") label(null);
    else if (k === "f") firstError();
    else if (k === "a") allCorrect();
    else if (k === "u") undoLast();
    else if (k === "n" && state.next) chain.then(function () { location.href = state.next; });
    else if (k === "p" && state.prev) chain.then(function () { location.href = state.prev; });
    else handled = false;
    if (handled) ev.preventDefault();
  });

  focusStep(0);
})();
