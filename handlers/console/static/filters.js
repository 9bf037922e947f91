// The filter builder of segments and journey conditions: a group (all or
// any) of rows, each a field comparison, a behaviour in a time window, or
// a raw expression. It reads and writes the Filter JSON the server checks
// (journeys.Filter); nested groups made through the API are kept as they
// are and shown as an expression row.
"use strict";

window.QiflowFilters = (() => {
  const ops = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "prefix", "has", "empty", "not_empty"];

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    e.append(...children);
    return e;
  }

  // valueOf turns the typed text into a JSON value: a list for in/not_in,
  // a number when it reads as one, else the text.
  function valueOf(op, text) {
    const one = (t) => {
      t = t.trim();
      return t !== "" && !isNaN(Number(t)) ? Number(t) : t;
    };
    if (op === "in" || op === "not_in") return text.split(",").map(one).filter((x) => x !== "");
    if (op === "empty" || op === "not_empty") return undefined;
    return one(text);
  }

  function textOf(v) {
    if (Array.isArray(v)) return v.join(", ");
    return v === undefined || v === null ? "" : String(v);
  }

  // rowsOf flattens a filter into the builder's group and rows.
  function rowsOf(f) {
    f = f || {};
    let mode = "all";
    let parts = f.all;
    if (f.any) {
      mode = "any";
      parts = f.any;
    }
    if (!parts) parts = Object.keys(f).length ? [f] : [];
    return {
      mode,
      rows: parts.map((p) => {
        if (p.field) return { kind: "field", field: p.field, op: p.op, value: textOf(p.value) };
        if (p.activity) return { kind: "activity", activity: p.activity, days: p.days || 0, min: p.min || 0, max: p.max === undefined ? "" : p.max };
        if (p.expr) return { kind: "expr", expr: p.expr };
        return { kind: "json", json: JSON.stringify(p) };
      }),
    };
  }

  function filterOf(state) {
    const parts = state.rows.map((r) => {
      switch (r.kind) {
        case "field": {
          const v = valueOf(r.op, r.value || "");
          const out = { field: r.field, op: r.op };
          if (v !== undefined) out.value = v;
          return out;
        }
        case "activity": {
          const out = { activity: r.activity || "*", days: Number(r.days) || 0, min: Number(r.min) || 0 };
          if (r.max !== "" && r.max !== undefined) out.max = Number(r.max);
          return out;
        }
        case "expr":
          return { expr: r.expr };
        default:
          try {
            return JSON.parse(r.json);
          } catch (e) {
            return { expr: "false" };
          }
      }
    });
    if (parts.length === 0) return { expr: "false" };
    return state.mode === "any" ? { any: parts } : { all: parts };
  }

  // mount draws a builder into box from filter; onChange hears every edit
  // with the new filter. texts are the labels (data-t-* of the box).
  function mount(box, filter, fields, onChange, texts) {
    const t = texts || box.dataset;
    const state = rowsOf(filter);
    const changed = () => onChange(filterOf(state));
    function draw() {
      box.replaceChildren();
      const mode = el("select", { "aria-label": t.tAll });
      mode.append(new Option(t.tAll, "all"), new Option(t.tAny, "any"));
      mode.value = state.mode;
      mode.addEventListener("change", () => {
        state.mode = mode.value;
        changed();
      });
      box.append(mode);
      state.rows.forEach((r, i) => {
        const row = el("div", { class: "filter-row", role: "group" });
        const input = (name, value, attrs) => {
          const e = el("input", Object.assign({ "aria-label": name, placeholder: name, value: value }, attrs || {}));
          e.addEventListener("input", () => {
            r[e.dataset.key] = e.value;
            changed();
          });
          return e;
        };
        if (r.kind === "field") {
          const f = el("select", { "aria-label": t.tField });
          for (const name of fields) f.append(new Option(name, name));
          f.value = r.field || fields[0];
          r.field = f.value;
          f.addEventListener("change", () => {
            r.field = f.value;
            changed();
          });
          const o = el("select", { "aria-label": "op" });
          for (const op of ops) o.append(new Option(op, op));
          o.value = r.op || "eq";
          r.op = o.value;
          o.addEventListener("change", () => {
            r.op = o.value;
            changed();
          });
          const v = input(t.tValue, r.value || "");
          v.dataset.key = "value";
          row.append(f, o, v);
        } else if (r.kind === "activity") {
          for (const [key, label, type] of [["activity", t.tActivity, "text"], ["days", t.tDays, "number"], ["min", t.tMin, "number"], ["max", t.tMax, "number"]]) {
            const e = input(label, r[key], { type: type, min: "0" });
            e.dataset.key = key;
            row.append(e);
          }
        } else {
          const key = r.kind === "expr" ? "expr" : "json";
          const e = input(t.tExpr, r[key] || "");
          e.dataset.key = key;
          row.append(e);
        }
        const rm = el("button", { type: "button", class: "secondary outline", text: t.tRemove });
        rm.addEventListener("click", () => {
          state.rows.splice(i, 1);
          draw();
          changed();
        });
        row.append(rm);
        box.append(row);
      });
      const adds = el("div", { class: "filter-adds" });
      for (const [kind, label] of [["field", t.tAdd], ["activity", t.tBehaviour], ["expr", t.tExpr]]) {
        const b = el("button", { type: "button", class: "secondary", text: "+ " + label });
        b.dataset.addRow = kind;
        b.addEventListener("click", () => {
          state.rows.push(kind === "activity" ? { kind, activity: "", days: 30, min: 1, max: "" } : { kind, field: fields[0], op: "eq", value: "", expr: "" });
          draw();
          changed();
        });
        adds.append(b);
      }
      box.append(adds);
    }
    draw();
    return () => filterOf(state);
  }

  // send posts JSON with the session's CSRF token (from the page's body)
  // and answers [status, body].
  async function send(url, body) {
    const hdrs = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    const resp = await fetch(url, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json", Accept: "application/json" }, hdrs),
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let out = {};
    try {
      out = await resp.json();
    } catch (e) {
      out = {};
    }
    return [resp.status, out];
  }

  // problemsText lists a refusal's fields, one a line.
  function problemsText(out) {
    const e = out.error || {};
    const fields = e.fields || {};
    const lines = Object.keys(fields).sort().map((k) => k + ": " + fields[k]);
    return lines.length ? lines.join("\n") : e.message || "error";
  }

  // The segment editor: the builder, a count preview as the filter changes
  // (debounced), and saving.
  function segmentPage(form) {
    const seg = JSON.parse(form.dataset.segment);
    const fields = JSON.parse(form.dataset.fields);
    const texts = document.getElementById("segment-texts").dataset;
    const preview = document.getElementById("segment-preview");
    const errors = document.getElementById("segment-errors");
    let timer = null;
    let current = seg.filter && Object.keys(seg.filter).length ? seg.filter : { all: [] };
    const showErrors = (out) => {
      errors.textContent = problemsText(out);
      errors.hidden = false;
    };
    const refresh = () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const [status, out] = await send("/console/segments/preview", { filter: current });
        if (status !== 200) {
          showErrors(out);
          return;
        }
        errors.hidden = true;
        preview.textContent = (out.complete ? texts.preview : texts.sample).replace("%d", out.matched).replace("%d", out.scanned);
        preview.dataset.matched = out.matched;
      }, 400);
    };
    const read = mount(form.querySelector("[data-filter-builder]"), current, fields, (f) => {
      current = f;
      refresh();
    });
    current = read();
    refresh();
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { id: seg.id || 0, name: form.elements.name.value, kind: form.elements.kind.value, filter: read() };
      const [status, out] = await send("/console/segments/save", body);
      if (status !== 200) {
        showErrors(out);
        return;
      }
      window.location.assign("/console/segments/" + out.id);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("segment-form");
    if (form) segmentPage(form);
  });

  return { mount, send, problemsText };
})();
