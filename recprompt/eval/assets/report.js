"use strict";
(() => {
  const { data, S, text, str, el, fmt, answerList, answerNode, promptsNode, scoresNode, metricsNode, caseTable } = RP;
  const rows = data.rows;
  const primary = data.metric_names.indexOf(data.primary);
  const status = (r) => (r.error ? "invalid" : r.hit === true ? "hit" : r.hit === false ? "miss" : "–");
  const positions = [...new Set(rows.map((r) => r.position).filter((p) => p != null))].sort((a, b) => a - b);
  const filters = [{
    label: "status",
    options: [["hit", "hits"], ["miss", "misses"], ["invalid", "invalid"]],
    test: (r, v) => (v === "invalid" ? !!r.error : v === "hit" ? r.hit === true : r.hit === false),
  }];
  if (positions.length) filters.push({
    label: "position", options: positions.map((p) => [String(p), `position ${p}`]),
    test: (r, v) => String(r.position) === v,
  });
  const columns = [
    { label: "#", value: (r, i) => i + 1 },
    { label: "case", value: (r) => r.id },
    { label: "truth", value: (r) => str(r.truth) },
    { label: "answer (top)", value: (r) => answerList(r.answer)[0] ?? null },
    { label: "rank of truth", value: (r) => r.rank },
    { label: data.primary || "metric", value: (r) => (primary < 0 ? null : r.metrics[primary]) },
    { label: "status", value: (r) => status(r), cell: (r) => el("span", { class: `status ${status(r)}` }, status(r)) },
  ];
  if (positions.length) columns.splice(2, 0, { label: "position", value: (r) => r.position });
  const haystack = (r) => [r.id, str(r.truth), ...answerList(r.answer), text(r.raw), r.error,
    ...(r.prompts || []).map(text)].filter((x) => x != null).join("\n");
  function detail(r) {
    const left = el("div", {}, promptsNode(r.prompts, r.prompt_count));
    if (r.raw != null) left.append(el("h3", {}, "Raw output"), el("pre", { class: "raw" }, text(r.raw)));
    if (r.error) left.append(el("h3", {}, "Error"), el("pre", { class: "error" }, r.error));
    const right = el("div", {},
      el("h3", {}, "Truth"), el("p", { class: "truth-text" }, str(r.truth)),
      el("h3", {}, `Parsed answer${r.decode ? ` (${r.decode})` : ""}`), answerNode(r.answer, r.truth),
      el("h3", {}, "This case's metrics"), metricsNode(data.metric_names, r.metrics),
      r.position != null ? el("p", {}, `The truth stood at position ${r.position} of the candidate list.`) : null,
      scoresNode(r));
    return el("div", { class: "detail-grid" }, left, right);
  }
  caseTable(document.getElementById("cases"), rows, { columns, filters, haystack, detail, pageSize: data.page_size || 100 });
  document.body.dataset.ready = "1";
})();
