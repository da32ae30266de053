"use strict";
(() => {
  const { data, S, text, str, el, fmt, answerList, answerNode, promptsNode, scoresNode, metricsNode, caseTable } = RP;
  const rows = data.rows;
  const runs = data.runs;
  const positions = [...new Set(rows.map((r) => r.position).filter((p) => p != null))].sort((a, b) => a - b);
  const status = (c) => (c.error ? "invalid" : c.hit === true ? "hit" : c.hit === false ? "miss" : "–");
  const filters = [{
    label: "agreement",
    options: [["hit differs", "hit differs"], ["answer differs", "answer differs"], ["same", "same"], ["differ", "any difference"]],
    test: (r, v) => (v === "differ" ? r.agreement !== "same" : r.agreement === v),
  }];
  if (positions.length) filters.push({
    label: "position", options: positions.map((p) => [String(p), `position ${p}`]),
    test: (r, v) => String(r.position) === v,
  });
  const columns = [
    { label: "#", value: (r, i) => i + 1 },
    { label: "case", value: (r) => r.id },
    { label: "truth", value: (r) => str(r.truth) },
  ];
  if (positions.length) columns.push({ label: "position", value: (r) => r.position });
  runs.forEach((run, k) => {
    const primary = run.metric_names.indexOf(run.primary);
    columns.push({ label: `${run.name}: answer`, value: (r) => answerList(r.runs[k].answer)[0] ?? null });
    columns.push({ label: `${run.name}: ${run.primary || "metric"}`, value: (r) => (primary < 0 ? null : r.runs[k].metrics[primary]) });
    columns.push({ label: `${run.name}: status`, value: (r) => status(r.runs[k]), cell: (r) => el("span", { class: `status ${status(r.runs[k])}` }, status(r.runs[k])) });
  });
  columns.push({ label: "agreement", value: (r) => r.agreement });
  const haystack = (r) => [r.id, str(r.truth), ...r.runs.flatMap((c) => [...answerList(c.answer), text(c.raw), c.error, ...(c.prompts || []).map(text)])]
    .filter((x) => x != null).join("\n");
  function detail(r) {
    const grid = el("div", { class: "compare-grid", style: `grid-template-columns: repeat(${runs.length}, minmax(0, 1fr))` });
    r.runs.forEach((c, k) => {
      const col = el("div", { class: "run-column" }, el("h3", {}, `${runs[k].name}: ${status(c)}`));
      col.append(el("h3", {}, `Parsed answer${c.decode ? ` (${c.decode})` : ""}`), answerNode(c.answer, r.truth));
      col.append(el("h3", {}, "This case's metrics"), metricsNode(runs[k].metric_names, c.metrics));
      if (c.raw != null) col.append(el("h3", {}, "Raw output"), el("pre", { class: "raw" }, text(c.raw)));
      if (c.error) col.append(el("h3", {}, "Error"), el("pre", { class: "error" }, c.error));
      col.append(promptsNode(c.prompts, c.prompt_count));
      const scores = scoresNode({ ...c, truth: r.truth });
      if (scores) col.append(scores);
      grid.append(col);
    });
    return el("div", {}, el("p", {}, "Truth: ", el("strong", { class: "truth-text" }, str(r.truth))), grid);
  }
  caseTable(document.getElementById("cases"), rows, { columns, filters, haystack, detail, pageSize: data.page_size || 100 });
  document.body.dataset.ready = "1";
})();
