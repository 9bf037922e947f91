// Qiflow console: the little the pages need beyond htmx. No inline script
// anywhere (the Content-Security-Policy allows only files like this one).
"use strict";

// The CSV import form reads the chosen file's header line in the browser
// and offers a field for each column, guessed from its name; the choices
// become the "mapping" field, which the form sends before the file (the
// server streams the file and must know the mapping first).
(function () {
  const aliases = {
    name: ["name", "姓名", "名字", "客户姓名", "联系人"],
    mobile: ["mobile", "phone", "手机", "手机号", "手机号码", "电话", "联系电话"],
    email: ["email", "e-mail", "邮箱", "电子邮箱"],
    unionid: ["unionid"],
    title: ["title", "职位", "职务"],
    region: ["region", "city", "地区", "城市", "省份"],
    company: ["company", "公司", "公司名称", "单位"],
    industry: ["industry", "行业"],
    company_size: ["company_size", "size", "规模", "公司规模", "人数"],
    budget: ["budget", "预算"],
    authority: ["authority", "决策人", "决策权"],
    need: ["need", "需求"],
    timeline: ["timeline", "时间", "采购时间"],
    channel: ["channel", "渠道", "来源渠道"],
  };

  function guess(header) {
    const h = header.trim().toLowerCase();
    for (const [field, names] of Object.entries(aliases)) {
      if (names.includes(h)) return field;
    }
    return "";
  }

  // headerOf splits a CSV line into cells, honouring quotes.
  function headerOf(line) {
    const cells = [];
    let cell = "", quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') { cell += '"'; i++; }
        else if (ch === '"') quoted = false;
        else cell += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") { cells.push(cell); cell = ""; }
      else cell += ch;
    }
    cells.push(cell);
    return cells.map((c) => c.replace(/^\ufeff/, "").trim()).filter((c) => c !== "");
  }

  function decode(buf, encoding) {
    if (encoding === "gbk") return new TextDecoder("gbk").decode(buf);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buf);
    } catch (e) {
      if (encoding === "utf-8") throw e;
      return new TextDecoder("gbk").decode(buf); // as Excel saves a CSV in China
    }
  }

  function writeMapping(form) {
    const mapping = {};
    form.querySelectorAll("select[data-column]").forEach((s) => {
      if (s.value) mapping[s.dataset.column] = s.value;
    });
    form.querySelector("input[name=mapping]").value = JSON.stringify(mapping);
  }

  async function showColumns(form) {
    const file = form.querySelector("input[type=file]").files[0];
    const box = form.querySelector("[data-columns]");
    box.replaceChildren();
    if (!file) return;
    const buf = await file.slice(0, 64 * 1024).arrayBuffer();
    let text;
    try {
      text = decode(buf, form.querySelector("select[name=encoding]").value);
    } catch (e) {
      box.textContent = box.dataset.badEncoding;
      return;
    }
    const fields = JSON.parse(box.dataset.fields);
    for (const header of headerOf(text.split(/\r?\n/)[0] || "")) {
      const label = document.createElement("label");
      label.textContent = header + " → ";
      const select = document.createElement("select");
      select.dataset.column = header;
      select.append(new Option(box.dataset.ignore, ""));
      for (const f of fields) select.append(new Option(f, f));
      select.value = guess(header);
      label.append(select);
      box.append(label);
    }
    writeMapping(form);
  }

  document.addEventListener("change", (e) => {
    const form = e.target.closest("form[data-import]");
    if (!form) return;
    if (e.target.matches("input[type=file], select[name=encoding]")) showColumns(form);
    else if (e.target.matches("select[data-column]")) writeMapping(form);
  });

  // The upload's progress, from htmx's XHR events.
  document.addEventListener("htmx:xhr:progress", (e) => {
    const bar = e.target.querySelector && e.target.querySelector("progress[data-upload]");
    if (bar && e.detail.lengthComputable) {
      bar.hidden = false;
      bar.value = (e.detail.loaded / e.detail.total) * 100;
    }
  });
})();

// Charts: an element with data-chart holds its categories and series as
// JSON; ECharts draws it (tooltips as rich text: no HTML, which the
// Content-Security-Policy's style rules would strip).
document.addEventListener("DOMContentLoaded", () => {
  if (!window.echarts) return;
  document.querySelectorAll("[data-chart]").forEach((el) => {
    const c = JSON.parse(el.dataset.chart);
    const chart = echarts.init(el);
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis", renderMode: "richText" },
      legend: { top: 0 },
      grid: { left: 40, right: 16, top: 32, bottom: 48 },
      xAxis: { type: "category", data: c.categories, axisLabel: { hideOverlap: true } },
      yAxis: c.percent ? { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } } : { type: "value", minInterval: 1 },
      series: c.series.map((s) => ({ name: s.name, type: c.kind, data: s.data, smooth: false })),
    });
    window.addEventListener("resize", () => chart.resize());
    el.dataset.rendered = "true";
  });
});

// A search box with data-filter hides the rows (its selector) whose
// data-text does not contain what is typed: the staff picker's search by
// name and department.
document.addEventListener("input", (e) => {
  const box = e.target;
  if (!box.matches || !box.matches("input[data-filter]")) return;
  const q = box.value.trim().toLowerCase();
  document.querySelectorAll(box.dataset.filter).forEach((row) => {
    row.hidden = q !== "" && !(row.dataset.text || "").toLowerCase().includes(q);
  });
});

// A file input with data-preview shows the chosen image before upload.
document.addEventListener("change", (e) => {
  const input = e.target;
  if (!input.matches || !input.matches("input[type=file][data-preview]")) return;
  const img = document.querySelector(input.dataset.preview);
  const file = input.files && input.files[0];
  if (!img) return;
  if (!file) {
    img.hidden = true;
    return;
  }
  img.src = URL.createObjectURL(file);
  img.hidden = false;
});
