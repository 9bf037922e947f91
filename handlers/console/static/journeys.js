// The journey designer: LogicFlow draws the graph; a node's configuration
// (its part of journeys.Graph) lives in its properties.node, and the edges
// carry the exit they connect (properties.exit). Saving turns the canvas
// back into the draft the server validates; its problems come back by
// node and are drawn on the nodes. Published statistics are shown on them.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("designer");
  if (!root || !window.Core) return;
  const data = JSON.parse(root.dataset.designer);
  const T = (k) => data.texts[k] || k;
  const journey = data.journey;
  const F = window.QiflowFilters;
  const panel = document.getElementById("designer-panel");
  const errors = document.getElementById("designer-errors");
  const status = document.getElementById("designer-status");

  const shapes = { entry: "circle", exit: "circle", wait: "ellipse", condition: "diamond", split: "diamond", action: "rect", jump: "rect" };
  const defaults = {
    entry: () => ({ entry: { on: "manual" } }),
    wait: () => ({ wait: { for: "duration", minutes: 60 } }),
    condition: () => ({ condition: { all: [] } }),
    split: () => ({ branches: [{ name: "a", percent: 50 }, { name: "b", percent: 50 }] }),
    action: () => ({ action: { kind: "message", text: "" } }),
    jump: () => ({}),
    exit: () => ({}),
  };

  // exitsOf names the exits a node must connect (as the server does).
  function exitsOf(n) {
    switch (n.type) {
      case "entry":
      case "action":
        return ["next"];
      case "wait":
        return n.wait && n.wait.for === "activity" ? ["happened", "timeout"] : ["next"];
      case "condition":
        return n.cases ? n.cases.map((c) => c.name).concat(["else"]) : ["yes", "no"];
      case "split":
        return (n.branches || []).map((b) => b.name);
      case "jump":
        return ["to"];
    }
    return [];
  }

  const stats = {};
  for (const s of data.stats || []) if (s.version === journey.version) stats[s.node] = s;

  function label(n) {
    let text = T("kind." + n.type) + "\n" + n.id;
    const s = stats[n.id];
    if (s) text += "\n" + T("stats").replace("%d", s.entered).replace("%d", s.waiting).replace("%d", s.conversions);
    return text;
  }

  const lf = new window.Core.LogicFlow({
    container: document.getElementById("designer-canvas"),
    grid: { size: 10, visible: true },
    keyboard: { enabled: true },
    edgeType: "polyline",
    isSilentMode: !data.can_edit,
    stopScrollGraph: true,
  });

  window.QiflowDesigner = { lf }; // for the browser tests and the curious

  // Draft → canvas.
  const nodes = journey.draft.nodes || [];
  lf.render({
    nodes: nodes.map((n, i) => ({
      id: n.id,
      type: shapes[n.type] || "rect",
      x: n.x || 120 + (i % 4) * 200,
      y: n.y || 120 + Math.floor(i / 4) * 160,
      text: label(n),
      properties: { node: n },
    })),
    edges: nodes.flatMap((n) => {
      const out = [];
      if (n.type === "jump" && n.to) out.push({ type: "polyline", sourceNodeId: n.id, targetNodeId: n.to, text: "to", properties: { exit: "to" } });
      for (const [exit, to] of Object.entries(n.exits || {})) out.push({ type: "polyline", sourceNodeId: n.id, targetNodeId: to, text: exit, properties: { exit } });
      return out;
    }),
  });
  // Fit a graph of some size into view; a small one stays at its own scale.
  if (nodes.length >= 4 && lf.fitView) lf.fitView(40);

  function nodeOf(id) {
    const m = lf.getNodeModelById(id);
    return m ? m.getProperties().node : null;
  }

  function setNode(id, n) {
    lf.setProperties(id, { node: n });
    lf.updateText(id, label(n));
  }

  // A new edge takes the first exit of its source not yet connected.
  let connecting = false; // an edge the panel adds names its exit itself
  lf.on("edge:add", ({ data: e }) => {
    if (connecting) return;
    const n = nodeOf(e.sourceNodeId);
    const used = lf.getGraphData().edges.filter((x) => x.sourceNodeId === e.sourceNodeId && x.id !== e.id).map((x) => (x.properties || {}).exit);
    const free = n ? exitsOf(n).filter((x) => !used.includes(x)) : [];
    if (free.length === 0) {
      lf.deleteEdge(e.id);
      showError(T("no_exit"));
      return;
    }
    lf.setProperties(e.id, { exit: free[0] });
    lf.updateText(e.id, free[0]);
  });

  // Draft from the canvas.
  function draft() {
    const g = lf.getGraphData();
    const out = { nodes: [], goal: journey.draft.goal, settings: journey.draft.settings || {} };
    for (const v of g.nodes) {
      const n = Object.assign({}, v.properties.node, { x: Math.round(v.x), y: Math.round(v.y) });
      n.exits = {};
      delete n.to;
      out.nodes.push(n);
    }
    const byId = Object.fromEntries(out.nodes.map((n) => [n.id, n]));
    for (const e of g.edges) {
      const n = byId[e.sourceNodeId];
      const exit = (e.properties || {}).exit;
      if (!n || !exit) continue;
      if (n.type === "jump") n.to = e.targetNodeId;
      else n.exits[exit] = e.targetNodeId;
    }
    for (const n of out.nodes) if (Object.keys(n.exits).length === 0) delete n.exits;
    return out;
  }

  function showError(text) {
    errors.textContent = text;
    errors.hidden = !text;
  }

  // mark draws the draft's problems on their nodes (red) and lists them.
  function mark(problems) {
    const bad = {};
    for (const k of Object.keys(problems || {})) {
      const m = /^nodes\.([^.]+)/.exec(k);
      if (m) bad[m[1]] = true;
    }
    for (const v of lf.getGraphData().nodes) {
      const model = lf.getNodeModelById(v.id);
      if (model && model.setStyle) model.setStyle("stroke", bad[v.id] ? "#c62828" : "#2b2b2b");
    }
    const lines = Object.keys(problems || {}).sort().map((k) => k + ": " + problems[k]);
    showError(lines.join("\n"));
    root.dataset.problems = lines.length;
  }
  mark(journey.problems);

  let counter = nodes.length;
  const newID = (type) => {
    let id;
    do id = type + ++counter;
    while (lf.getNodeModelById(id));
    return id;
  };
  // Dragged from the palette onto the canvas: LogicFlow drops a node with
  // its own id; it gets ours and its configuration.
  root.querySelectorAll("[data-add]").forEach((b) =>
    b.addEventListener("mousedown", () => {
      if (!lf.dnd) return;
      const type = b.dataset.add;
      lf.dnd.startDrag({ type: shapes[type], text: T("kind." + type), properties: { kind: type } });
    }),
  );
  lf.on("node:dnd-add", ({ data: v }) => {
    const type = (v.properties || {}).kind;
    if (!type) return;
    const id = newID(type);
    lf.changeNodeId(v.id, id);
    setNode(id, Object.assign({ id, type }, defaults[type]()));
    edit(id);
  });
  root.querySelectorAll("[data-add]").forEach((b) =>
    b.addEventListener("click", () => {
      const type = b.dataset.add;
      const id = newID(type);
      const n = Object.assign({ id, type }, defaults[type]());
      // Placed on a free spot of a grid; the marketer drags it where it belongs.
      const taken = lf.getGraphData().nodes.map((v) => [v.x, v.y]);
      let x = 120, y = 120;
      for (let k = 0; k < 64; k++) {
        x = 120 + (k % 3) * 200;
        y = 120 + Math.floor(k / 3) * 150;
        if (!taken.some(([a, b]) => Math.abs(a - x) < 100 && Math.abs(b - y) < 80)) break;
      }
      lf.addNode({ id, type: shapes[type], x, y, text: label(n), properties: { node: n } });
      edit(id);
    }),
  );

  // The side panel: one node's configuration.
  function field(labelText, input) {
    const l = document.createElement("label");
    l.append(labelText, input);
    return l;
  }
  function input(value, onInput, attrs) {
    const e = document.createElement(attrs && attrs.tag === "textarea" ? "textarea" : "input");
    for (const [k, v] of Object.entries(attrs || {})) if (k !== "tag") e.setAttribute(k, v);
    e.value = value === undefined || value === null ? "" : value;
    e.addEventListener("input", () => onInput(e.value));
    return e;
  }
  function select(value, options, onChange, prefix) {
    const e = document.createElement("select");
    const label = (o) => {
      for (const p of [prefix, "opt."]) if (p && T(p + o) !== p + o) return T(p + o);
      return o;
    };
    for (const o of options) e.append(new Option(label(o), o));
    e.value = value;
    e.addEventListener("change", () => onChange(e.value));
    return e;
  }

  // button is a button of the panel: its text, Pico's class, what a click does.
  function button(text, className, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = className;
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  // upload is a file input that stores the chosen file as the corp's
  // media of kind and hands its id to done.
  function upload(kind, accept, done) {
    const file = document.createElement("input");
    file.type = "file";
    if (accept) file.accept = accept;
    file.addEventListener("change", async () => {
      if (!file.files[0]) return;
      const form = new FormData();
      form.append("kind", kind);
      form.append("file", file.files[0]);
      const hdrs = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      const resp = await fetch("/console/journeys/media", { method: "POST", body: form, headers: hdrs, credentials: "same-origin" });
      const out = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        showError(F.problemsText(out));
        return;
      }
      done(out.id);
    });
    return file;
  }

  function edit(id) {
    const n = nodeOf(id);
    panel.replaceChildren();
    if (!n) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = T("pick");
      panel.append(p);
      return;
    }
    const h = document.createElement("h3");
    h.textContent = T("kind." + n.type) + " · " + n.id;
    panel.append(h);
    const save = () => setNode(id, n);
    const redraw = () => {
      save();
      edit(id);
    };
    switch (n.type) {
      case "entry": {
        const e = (n.entry = n.entry || { on: "manual" });
        panel.append(field(T("entry.on"), select(e.on, ["manual", "activity", "lead_change", "score", "segment", "tag", "date"], (v) => { e.on = v; redraw(); })));
        if (e.on === "activity") {
          panel.append(field(T("entry.activity"), input(e.activity, (v) => { e.activity = v; save(); }, { placeholder: "wecom.added" })));
          panel.append(field(T("entry.code"), input((e.properties || {}).code_id, (v) => { e.properties = v ? { code_id: v } : undefined; save(); }, { inputmode: "numeric" })));
        }
        if (e.on === "lead_change") {
          panel.append(field(T("entry.change"), select(e.change || "stage", ["stage", "status", "fit", "score", "claimed", "released"], (v) => { e.change = v; save(); })));
          e.change = e.change || "stage";
          panel.append(field(T("entry.to"), input(e.to, (v) => { e.to = v; save(); })));
        }
        if (e.on === "segment") {
          const s = select(String(e.segment || ""), [""].concat(data.segments.map((g) => String(g.id))), (v) => { e.segment = Number(v); save(); });
          [...s.options].forEach((o) => { const g = data.segments.find((x) => String(x.id) === o.value); if (g) o.textContent = g.name; });
          panel.append(field(T("entry.segment"), s));
        }
        if (e.on === "score") panel.append(field(T("entry.above"), input(e.above, (v) => { e.above = Number(v); save(); }, { type: "number", min: "1" })));
        if (e.on === "tag") panel.append(field(T("entry.tag"), input(e.tag, (v) => { e.tag = v; save(); })));
        if (e.on === "date") {
          const keys = data.date_fields || [];
          e.field = e.field || keys[0] || "";
          panel.append(field(T("entry.field"), select(e.field, keys.length ? keys : [""], (v) => { e.field = v; save(); })));
          panel.append(field(T("entry.offset"), input(e.offset_days || 0, (v) => { e.offset_days = Number(v); save(); }, { type: "number", min: "-366", max: "366" })));
          panel.append(field(T("entry.at"), input(e.at || "09:00", (v) => { e.at = v; save(); }, { type: "time" })));
        }
        break;
      }
      case "wait": {
        const w = (n.wait = n.wait || { for: "duration", minutes: 60 });
        panel.append(field(T("wait.for"), select(w.for, ["duration", "until", "workday", "activity"], (v) => { w.for = v; redraw(); })));
        if (w.for === "duration") panel.append(field(T("wait.minutes"), input(w.minutes, (v) => { w.minutes = Number(v); save(); }, { type: "number", min: "1" })));
        if (w.for === "until") panel.append(field(T("wait.until"), input(w.until, (v) => { w.until = v; save(); }, { placeholder: "2026-12-07T10:00:00+08:00" })));
        if (w.for === "workday") panel.append(field(T("wait.at"), input(w.at || "10:00", (v) => { w.at = v; save(); }, { type: "time" })));
        if (w.for === "workday" && !w.at) w.at = "10:00";
        if (w.for === "activity") {
          panel.append(field(T("wait.activity"), input(w.activity, (v) => { w.activity = v; save(); }, { placeholder: "form.submitted" })));
          panel.append(field(T("wait.timeout"), input(w.timeout_minutes, (v) => { w.timeout_minutes = Number(v); save(); }, { type: "number", min: "1" })));
        }
        break;
      }
      case "condition": {
        const ft = {};
        for (const k of ["all", "any", "add", "remove", "behaviour", "expr", "field", "value", "activity", "days", "min", "max"]) ft["t" + k[0].toUpperCase() + k.slice(1)] = T("filter." + k);
        if (n.cases) {
          // Multi-way: each case a name (its exit) and a filter built like
          // any other; the first that holds wins, else "else".
          n.cases.forEach((c, i) => {
            const box = document.createElement("fieldset");
            box.className = "case";
            box.dataset.case = String(i);
            const name = document.createElement("input");
            name.value = c.name || "";
            name.setAttribute("aria-label", T("case.name"));
            name.placeholder = T("case.name");
            // The exits are named by it: redrawn once the name is done.
            name.addEventListener("change", () => { c.name = name.value.trim(); redraw(); });
            const rm = button(T("case.remove"), "secondary outline", () => {
              n.cases.splice(i, 1);
              if (n.cases.length === 0) {
                n.condition = c.condition;
                delete n.cases;
              }
              redraw();
            });
            const builder = document.createElement("div");
            box.append(field(T("case.name"), name), builder, rm);
            F.mount(builder, c.condition, data.fields, (f) => { c.condition = f; save(); }, ft);
            panel.append(box);
          });
          const add = button("+ " + T("case.add"), "secondary", () => {
            n.cases.push({ name: "case" + (n.cases.length + 1), condition: { all: [] } });
            redraw();
          });
          panel.append(add);
          break;
        }
        const multi = button(T("to_cases"), "secondary outline", () => {
          n.cases = [{ name: "case1", condition: n.condition || { all: [] } }];
          delete n.condition;
          redraw();
        });
        panel.append(multi);
        const box = document.createElement("div");
        panel.append(box);
        F.mount(box, n.condition, data.fields, (f) => { n.condition = f; save(); }, ft);
        break;
      }
      case "split": {
        const text = (n.branches || []).map((b) => b.name + ":" + b.percent).join(", ");
        panel.append(field(T("split.branches"), input(text, (v) => {
          n.branches = v.split(",").map((p) => p.trim()).filter(Boolean).map((p) => { const [name, pct] = p.split(":"); return { name: name.trim(), percent: Number(pct) }; });
          save();
        }, { placeholder: "a:50, b:50" })));
        break;
      }
      case "action": {
        const a = (n.action = n.action || { kind: "message" });
        panel.append(field(T("action.kind"), select(a.kind, ["message", "invite", "notify", "task", "tag", "stage", "status", "score", "activity", "pool", "assign", "segment_add", "segment_remove", "webhook"], (v) => { n.action = { kind: v }; redraw(); }, "act.")));
        const text = (key, attrs) => panel.append(field(T("action." + key), input(a[key], (v) => { a[key] = v; save(); }, attrs)));
        if (a.kind === "message" || a.kind === "invite") {
          // Images: uploaded here, stored as the corp's media, sent with the text.
          const box = document.createElement("div");
          box.className = "images";
          for (const id of a.images || []) {
            const img = document.createElement("img");
            img.src = "/console/media/" + id;
            img.alt = "#" + id;
            const rm = button(T("delete_image"), "secondary outline", () => { a.images = a.images.filter((x) => x !== id); redraw(); });
            box.append(img, rm);
          }
          const file = upload("image", "image/png,image/jpeg", (id) => {
            a.images = (a.images || []).concat([id]);
            redraw();
          });
          panel.append(box, field(T("action.image"), file));
          // Links, mini programs, videos and files.
          (a.attachments || []).forEach((x, i) => {
            const set = document.createElement("fieldset");
            set.className = "attachment";
            set.append(field(T("att.kind"), select(x.kind, ["link", "miniprogram", "video", "file"], (v) => { a.attachments[i] = { kind: v }; redraw(); }, "att.")));
            const prop = (key, attrs) => set.append(field(T("att." + key), input(x[key], (v) => { x[key] = v; save(); }, attrs)));
            if (x.kind === "link") {
              prop("title", { maxlength: "128" });
              prop("url", { type: "url", placeholder: "https://" });
              prop("desc", { maxlength: "512" });
            }
            if (x.kind === "miniprogram") {
              prop("title", { maxlength: "64" });
              prop("appid", { placeholder: "wx…" });
              prop("page", { placeholder: "pages/index.html" });
            }
            if (x.kind !== "link") {
              const kind = x.kind === "miniprogram" ? "image" : x.kind;
              const accept = { image: "image/png,image/jpeg", video: "video/mp4", file: "" }[kind];
              const shown = document.createElement("small");
              shown.textContent = x.media ? "#" + x.media : "";
              set.append(field(T(x.kind === "miniprogram" ? "att.cover" : "att.media"), upload(kind, accept, (id) => { x.media = id; redraw(); })), shown);
            }
            const rm = button(T("att.remove"), "secondary outline", () => { a.attachments.splice(i, 1); redraw(); });
            set.append(rm);
            panel.append(set);
          });
          const addAtt = button("+ " + T("att.add"), "secondary", () => {
            a.attachments = (a.attachments || []).concat([{ kind: "link" }]);
            redraw();
          });
          panel.append(addAtt);
        }
        if (a.kind === "message") {
          text("text", { tag: "textarea", rows: "4", maxlength: "4000" });
          const hint = document.createElement("small");
          hint.textContent = T("action.vars") + " · " + T("action.caps").replace("%d", data.settings.cap_day).replace("%d", data.settings.cap_week).replace("%s", data.settings.quiet_start + "–" + data.settings.quiet_end);
          panel.append(hint);
        }
        if (a.kind === "notify") text("text", { tag: "textarea", rows: "3", maxlength: "2048" });
        if (a.kind === "task") {
          panel.append(field(T("action.title"), input(a.text, (v) => { a.text = v; save(); }, { maxlength: "255" })));
          panel.append(field(T("action.due_hours"), input(a.due_hours || 24, (v) => { a.due_hours = Number(v); save(); }, { type: "number", min: "1" })));
        }
        if (a.kind === "invite") {
          panel.append(field(T("action.code"), input(a.code, (v) => { a.code = Number(v); save(); }, { type: "number", min: "1" })));
          text("text", { tag: "textarea", rows: "3", maxlength: "4000" });
        }
        if (a.kind === "assign") {
          const users = data.users || [];
          const s = select(String(a.owner || 0), ["0"].concat(users.map((u) => String(u.id))), (v) => { a.owner = Number(v); save(); });
          [...s.options].forEach((o) => {
            const u = users.find((x) => String(x.id) === o.value);
            o.textContent = u ? u.name || u.email : T("action.by_rules");
          });
          panel.append(field(T("action.owner"), s));
          text("reason");
        }
        if (a.kind === "pool") panel.append(field(T("action.pool"), input(a.pool, (v) => { a.pool = Number(v); save(); }, { type: "number", min: "1" })));
        if (a.kind === "tag") {
          panel.append(field(T("action.tags_add"), input((a.tags_add || []).join(","), (v) => { a.tags_add = v.split(",").map((x) => x.trim()).filter(Boolean); save(); })));
          panel.append(field(T("action.tags_remove"), input((a.tags_remove || []).join(","), (v) => { a.tags_remove = v.split(",").map((x) => x.trim()).filter(Boolean); save(); })));
        }
        if (a.kind === "stage") text("stage");
        if (a.kind === "score") panel.append(field(T("action.points"), input(a.points, (v) => { a.points = Number(v); save(); }, { type: "number", min: "-1000", max: "1000" })));
        if (a.kind === "status") text("status");
        if (a.kind === "activity") text("activity", { placeholder: "nurture.touch" });
        if (a.kind === "segment_add" || a.kind === "segment_remove") {
          const statics = data.segments.filter((g) => g.kind === "static");
          const s = select(String(a.segment || ""), [""].concat(statics.map((g) => String(g.id))), (v) => { a.segment = Number(v); save(); });
          [...s.options].forEach((o) => { const g = statics.find((x) => String(x.id) === o.value); if (g) o.textContent = g.name; });
          panel.append(field(T("action.segment"), s));
        }
        if (a.kind === "webhook") {
          text("url", { type: "url" });
          text("secret");
        }
        break;
      }
    }
    // Each exit's target, also settable here (without a mouse).
    if (data.can_edit) {
      const others = lf.getGraphData().nodes.map((v) => v.id).filter((x) => x !== id && (nodeOf(x) || {}).type !== "entry");
      for (const exit of exitsOf(n)) {
        const edges = lf.getGraphData().edges.filter((e) => e.sourceNodeId === id && (e.properties || {}).exit === exit);
        const current = edges.length ? edges[0].targetNodeId : "";
        const s = select(current, [""].concat(others), (to) => {
          for (const e of edges) lf.deleteEdge(e.id);
          if (to) {
            connecting = true;
            try {
              lf.addEdge({ type: "polyline", sourceNodeId: id, targetNodeId: to, text: exit, properties: { exit } });
            } finally {
              connecting = false;
            }
          }
          edit(id);
        });
        s.dataset.exit = exit;
        panel.append(field(T("exit") + " " + exit, s));
      }
    }
    const del = button(T("delete"), "secondary outline", () => { lf.deleteNode(id); edit(null); });
    del.hidden = !data.can_edit;
    panel.append(del);
  }

  lf.on("node:click", ({ data: v }) => edit(v.id));
  lf.on("blank:click", () => edit(null));

  // The journey's goal and settings sit in the panel when nothing is picked.
  const saveBtn = document.getElementById("designer-save");
  async function saveDraft() {
    const [code, out] = await F.send("/console/journeys/" + journey.id + "/draft", { name: document.getElementById("journey-name").value, draft: draft() });
    if (code !== 200) {
      showError(F.problemsText(out));
      return null;
    }
    journey.draft = out.draft;
    mark(out.problems);
    status.textContent = T("saved");
    return out;
  }
  if (saveBtn) saveBtn.addEventListener("click", saveDraft);
  const publishBtn = document.getElementById("designer-publish");
  if (publishBtn)
    publishBtn.addEventListener("click", async () => {
      const saved = await saveDraft();
      if (!saved || (saved.problems && Object.keys(saved.problems).length)) return;
      const mapping = {};
      for (const line of document.getElementById("designer-mapping").value.split("\n")) {
        const [from, to] = line.split("=").map((x) => (x || "").trim());
        if (from && to) mapping[from] = to;
      }
      const [code, out] = await F.send("/console/journeys/" + journey.id + "/publish", { migrate: document.getElementById("designer-migrate").checked, mapping });
      if (code !== 200) {
        showError(F.problemsText(out));
        return;
      }
      window.location.reload();
    });

  // Statistics refresh while the journey runs.
  if (journey.version) {
    setInterval(async () => {
      const resp = await fetch("/console/journeys/" + journey.id + "/stats", { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!resp.ok) return;
      const out = await resp.json();
      for (const s of out.nodes || []) if (s.version === journey.version) stats[s.node] = s;
      for (const v of lf.getGraphData().nodes) lf.updateText(v.id, label(v.properties.node));
    }, 5000);
  }
});
