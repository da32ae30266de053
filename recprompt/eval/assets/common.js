"use strict";
// Shared by report.html and compare.html. Case data comes from a JSON script element and is
// only ever put into the page as text (textContent / text nodes), never parsed as HTML.
const RP = (() => {
  const data = JSON.parse(document.getElementById("case-data").textContent);
  const S = data.strings;
  // Texts and item lists arrive as strings of base-32 indices into S (see cases_view.py):
  // a digit from CONT continues an index, a digit from TERM ends it.
  const TERM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef";
  const CONT = "ghijklmnopqrstuvwxyz0123456789-_";
  const TV = new Map([...TERM].map((c, i) => [c, i]));
  const CV = new Map([...CONT].map((c, i) => [c, i]));
  function items(code) {
    const out = [];
    let acc = 0;
    for (const ch of code || "") {
      if (CV.has(ch)) acc = acc * 32 + CV.get(ch);
      else { out.push(acc * 32 + TV.get(ch)); acc = 0; }
    }
    return out;
  }
  const text = (code) => (code == null ? null : items(code).map((i) => S[i]).join(""));
  const str = (code) => (code == null ? null : S[items(code)[0]]);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c == null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = (x) => (x == null ? "–" : typeof x === "number" ? String(Number(x.toPrecision(4))) : String(x));

  function answerList(answer) {
    // A parsed answer: items (an encoded string), or a number/boolean/null.
    if (typeof answer === "string") return items(answer).map((i) => S[i]);
    return answer == null ? [] : [fmt(answer)];
  }

  function answerNode(answer, truth) {
    if (typeof answer !== "string") return el("p", {}, answer == null ? "(no answer)" : fmt(answer));
    const list = items(answer);
    if (list.length === 0) return el("p", {}, "(empty)");
    const t = items(truth)[0];
    return el("ol", { class: "answer" },
      list.map((i) => el("li", { class: i === t ? "truth" : null }, S[i])));
  }

  function promptsNode(prompts, count) {
    if (prompts == null) return el("p", { class: "note" }, "Prompt not recorded: this run predates prompt keeping; rerun eval into a new folder to see it.");
    const parts = [];
    prompts.forEach((p, k) => {
      parts.push(el("h3", {}, `Prompt ${k + 1} of ${count || prompts.length} (as sent to the model)`));
      parts.push(el("pre", { class: "prompt" }, text(p)));
    });
    if (count > prompts.length) parts.push(el("p", { class: "note" }, `${count - prompts.length} more call(s) not kept (the first ${prompts.length} distinct prompts are stored).`));
    return el("div", {}, parts);
  }

  function scoresNode(row) {
    const sc = row.scores;
    if (!sc) return null;
    const names = items(sc.names != null ? sc.names : row.answer);
    const t = items(row.truth)[0];
    const head = ["candidate", "score"];
    if (row.parts) head.push("LLM", "prior");
    const body = names.map((n, k) => {
      const cells = [el("td", { class: n === t ? "truth" : null }, S[n]), el("td", { class: "num" }, fmt(sc.values[k]))];
      if (row.parts) cells.push(el("td", { class: "num" }, fmt(row.parts.llm_scores[k])), el("td", { class: "num" }, fmt(row.parts.prior_scores[k])));
      return el("tr", {}, cells);
    });
    return el("div", {}, el("h3", {}, "Scores"),
      el("table", { class: "scores" }, el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))), el("tbody", {}, body)));
  }

  function metricsNode(names, values) {
    return el("table", { class: "case-metrics" }, el("tbody", {},
      names.map((n, k) => el("tr", {}, el("th", {}, n), el("td", { class: "num" }, fmt(values[k]))))));
  }

  const compare = (a, b) => {
    if (a == null && b == null) return 0;
    if (a == null) return 1;
    if (b == null) return -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  };

  // A sortable, filterable, searchable, paged table. columns: [{label, value(row), cell?(row)}];
  // filters: [{label, options: [[value, text]], test(row, value)}]; haystack(row) -> string;
  // detail(row) -> Node shown under a clicked row.
  function caseTable(root, rows, { columns, filters, haystack, detail, pageSize = 100 }) {
    const state = { sort: null, dir: 1, page: 0, query: "", filters: filters.map(() => "all") };
    const hay = new Array(rows.length);
    const controls = el("div", { class: "controls" });
    const search = el("input", { type: "search", id: "case-search", placeholder: "Search cases, titles, prompts, outputs…" });
    controls.append(search);
    filters.forEach((f, k) => {
      const select = el("select", { "data-filter": f.label, "aria-label": f.label },
        el("option", { value: "all" }, `${f.label}: all`), f.options.map(([v, t]) => el("option", { value: v }, t)));
      select.addEventListener("change", () => { state.filters[k] = select.value; state.page = 0; draw(); });
      controls.append(select);
    });
    const summary = el("span", { id: "case-summary", class: "note" });
    controls.append(summary);
    const headRow = el("tr", {}, columns.map((c, k) => {
      const th = el("th", { scope: "col", "data-col": k }, c.label);
      th.addEventListener("click", () => {
        state.dir = state.sort === k ? -state.dir : 1; state.sort = k; state.page = 0; draw();
      });
      return th;
    }));
    const tbody = el("tbody", {});
    const table = el("table", { class: "cases", id: "case-table" }, el("thead", {}, headRow), tbody);
    const prev = el("button", { type: "button" }, "‹ previous");
    const next = el("button", { type: "button" }, "next ›");
    const where = el("span", { class: "note" });
    const pager = el("div", { class: "pager" }, prev, where, next);
    prev.addEventListener("click", () => { state.page -= 1; draw(); });
    next.addEventListener("click", () => { state.page += 1; draw(); });
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.query = search.value.trim().toLowerCase(); state.page = 0; draw(); }, 150);
    });
    root.replaceChildren(controls, pager, table);

    function matching() {
      const out = [];
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i];
        if (!filters.every((f, k) => state.filters[k] === "all" || f.test(row, state.filters[k]))) continue;
        if (state.query) {
          if (hay[i] === undefined) hay[i] = haystack(row).toLowerCase();
          if (!hay[i].includes(state.query)) continue;
        }
        out.push(i);
      }
      if (state.sort != null) {
        const col = columns[state.sort];
        out.sort((a, b) => compare(col.value(rows[a], a), col.value(rows[b], b)) * state.dir || a - b);
      }
      return out;
    }

    function draw() {
      const shown = matching();
      const pages = Math.max(1, Math.ceil(shown.length / pageSize));
      state.page = Math.min(Math.max(state.page, 0), pages - 1);
      const start = state.page * pageSize;
      const slice = shown.slice(start, start + pageSize);
      const fragment = document.createDocumentFragment();
      for (const i of slice) {
        const row = rows[i];
        const tr = el("tr", { class: "case-row", "data-case": row.id, tabindex: 0 },
          columns.map((c) => {
            const v = c.cell ? c.cell(row, i) : c.value(row, i);
            return v instanceof Node ? el("td", {}, v) : el("td", { class: typeof v === "number" ? "num" : null }, fmt(v));
          }));
        const toggle = () => {
          const open = tr.nextSibling && tr.nextSibling.classList && tr.nextSibling.classList.contains("detail-row");
          if (open) { tr.nextSibling.remove(); tr.classList.remove("open"); return; }
          tr.classList.add("open");
          tr.after(el("tr", { class: "detail-row" }, el("td", { class: "detail", colspan: columns.length }, detail(row))));
        };
        tr.addEventListener("click", toggle);
        tr.addEventListener("keydown", (e) => { if (e.key === "Enter") toggle(); });
        fragment.append(tr);
      }
      tbody.replaceChildren(fragment);
      headRow.querySelectorAll("th").forEach((th, k) => {
        if (k === state.sort) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      });
      summary.textContent = `${shown.length} of ${rows.length} cases match`;
      where.textContent = shown.length ? `rows ${start + 1}–${start + slice.length}, page ${state.page + 1} of ${pages}` : "no case matches";
      prev.disabled = state.page === 0;
      next.disabled = state.page >= pages - 1;
    }
    // report.html#case=ID opens that case (a link to one case, and how tests look inside one).
    function openCase(id) {
      const shown = matching();
      const at = shown.findIndex((i) => rows[i].id === id);
      if (at < 0) return false;
      state.page = Math.floor(at / pageSize);
      draw();
      const tr = [...tbody.querySelectorAll("tr.case-row")].find((t) => t.dataset.case === id);
      if (tr) tr.click();  // no scrolling: headless screenshots of scrolled pages come out blank
      return !!tr;
    }

    draw();
    const wanted = decodeURIComponent((location.hash.match(/^#case=(.*)$/) || [])[1] || "");
    if (wanted) openCase(wanted);
    return { draw, state, openCase };
  }

  return { data, S, items, text, str, el, fmt, answerList, answerNode, promptsNode, scoresNode, metricsNode, caseTable };
})();
