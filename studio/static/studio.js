// The content studio's page logic: plain JS over /api/studio and /api/kb. Texts come from the server (the page's #studio-config JSON).
(function () {
  "use strict";
  const S = JSON.parse(document.getElementById('studio-config').textContent), t = S.t;
  let token = sessionStorage.getItem("studio-token") || "";
  let csrf = S.csrf || "";
  let intentNames = [];
  let pollTimer = null;

  const $ = (sel) => document.querySelector(sel);
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function say(text, error) {
    const box = $("#message");
    box.textContent = text || "";
    box.className = error ? "error" : "";
  }

  async function api(method, path, body) {
    const headers = {"Accept": "application/json"};
    if (token) headers["Authorization"] = "Bearer " + token;
    else if (csrf) headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)});
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = data && data.detail;
      let text = typeof detail === "string" ? detail : (detail && detail.problems ? detail.problems.join("\n") : "");
      if (!text && data && data.problems) text = data.problems.map((p) => p.field + ": " + p.problem).join("\n");
      const error = new Error(text || ("HTTP " + response.status));
      error.status = response.status;
      throw error;
    }
    return data;
  }
  const guard = (fn) => async (...args) => {
    try { await fn(...args); } catch (error) { say(error.message, true); }
  };

  // ---- login --------------------------------------------------------------------------------------------------
  async function start() {
    if (!token && !csrf) {
      try { const me = await api("GET", "/api/inbox/me"); csrf = me.csrf_token; } catch (_) { /* not logged in */ }
    }
    if (!token && !csrf) { $("#login").hidden = false; return; }
    try { await api("GET", "/api/studio/models"); } catch (error) {
      if (error.status === 401 || error.status === 403) {
        token = ""; csrf = ""; sessionStorage.removeItem("studio-token");
        $("#login").hidden = false; say(error.message, true); return;
      }
    }
    $("#login").hidden = true; $("#app").hidden = false; $("#tabs").hidden = false; $("#logout").hidden = false;
    await loadIntentNames();
    show("review");
  }
  $("#login-form").addEventListener("submit", guard(async (event) => {
    event.preventDefault();
    const form = event.target;
    if (form.token.value) {
      token = form.token.value; sessionStorage.setItem("studio-token", token);
    } else {
      const me = await api("POST", "/api/inbox/login", {email: form.email.value, password: form.password.value});
      csrf = me.csrf_token;
    }
    say("");
    await start();
  }));
  $("#logout").addEventListener("click", guard(async () => {
    if (!token) await api("POST", "/api/inbox/logout").catch(() => null);
    sessionStorage.removeItem("studio-token"); token = ""; csrf = ""; location.reload();
  }));

  // ---- tabs ---------------------------------------------------------------------------------------------------
  const loaders = {review: loadReview, intents: loadIntents, responses: loadResponses, kb: loadKb, train: loadTrain};
  function show(name) {
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
    document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== "tab-" + name; });
    if (name !== "train" && pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    guard(loaders[name])();
  }
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.tab)));

  async function loadIntentNames() {
    intentNames = (await api("GET", "/api/studio/intents")).map((i) => i.name);
  }
  const intentSelect = (selected) => el("select", {class: "intent-select"},
    intentNames.map((name) => el("option", {value: name, selected: name === selected}, name)));

  // ---- review queue -------------------------------------------------------------------------------------------
  async function loadReview() {
    const data = await api("GET", "/api/studio/review?sort=" + $("#review-sort").value);
    $("#review-waiting").textContent = data.waiting;
    const list = $("#review-list");
    list.replaceChildren();
    for (const group of data.groups) {
      const text = el("input", {value: group.text, class: "review-text"});
      const select = intentSelect(group.intent);
      list.append(el("li", {dataset: {text: group.text}},
        el("div", {}, el("span", {class: "count"}, group.count + t.times), el("strong", {}, group.text),
          group.reasons.map((r) => el("span", {class: "reason"}, r)),
          group.confidence !== null ? el("span", {class: "reason"}, group.intent + " " + group.confidence) : null,
          el("small", {}, " " + group.latest.slice(0, 16).replace("T", " "))),
        group.examples.length > 1 ? el("div", {}, el("small", {}, group.examples.join(" · "))) : null,
        el("div", {}, text, " ", t.intent, " ", select,
          el("button", {class: "add-example", onclick: guard(async () => {
            const saved = await api("POST", "/api/studio/review/example",
              {keys: group.keys, text: text.value, intent: select.value});
            say("✓ " + select.value + " ← " + text.value + " (" + saved.saved + ")");
            await loadReview();
          })}, t.add_example),
          el("button", {class: "new-article", onclick: guard(async () => {
            show("kb");
            openArticle(null, {questions: [text.value], title_zh: text.value}, group);
          })}, t.new_article),
          el("button", {class: "dismiss", onclick: guard(async () => {
            await api("POST", "/api/studio/review/dismiss", {keys: group.keys});
            await loadReview();
          })}, t.dismiss))));
    }
  }
  $("#review-list").previousElementSibling.querySelector(".refresh").addEventListener("click", guard(loadReview));
  $("#review-sort").addEventListener("change", guard(loadReview));

  // ---- intents and examples ---------------------------------------------------------------------------------------
  let currentIntent = null;
  async function loadIntents() {
    const intents = await api("GET", "/api/studio/intents");
    intentNames = intents.map((i) => i.name);
    currentIntent = currentIntent && intentNames.includes(currentIntent) ? currentIntent : intentNames[0];
    $("#intent-list").replaceChildren(...intents.map((i) => el("li", {class: i.name === currentIntent ? "selected" : ""},
      el("a", {href: "#", onclick: (e) => { e.preventDefault(); currentIntent = i.name; guard(loadIntents)(); }},
        i.name + " (" + (i.examples.zh.length + i.examples.en.length) + ")"))));
    const intent = intents.find((i) => i.name === currentIntent);
    if (!intent) return;
    const column = (lang, label) => el("div", {}, el("h3", {}, label),
      el("ul", {}, intent.examples[lang].map((example) => {
        const input = el("input", {value: example});
        const move = intentSelect(intent.name);
        return el("li", {}, input,
          el("button", {onclick: guard(async () => {
            await api("PUT", `/api/studio/intents/${intent.name}/examples`, {old: example, new: input.value});
            say("✓"); await loadIntents();
          })}, t.save),
          el("button", {onclick: guard(async () => {
            await api("POST", `/api/studio/intents/${intent.name}/examples/delete`, {text: example});
            await loadIntents();
          })}, t.delete),
          " ", t.move, " ", move,
          el("button", {onclick: guard(async () => {
            if (move.value === intent.name) return;
            await api("POST", `/api/studio/intents/${intent.name}/examples/move`, {text: example, to: move.value});
            await loadIntents();
          })}, "→"));
      })));
    const add = el("input", {placeholder: t.add_example});
    $("#intent-detail").replaceChildren(el("h2", {}, intent.name),
      el("p", {}, add, el("button", {onclick: guard(async () => {
        const saved = await api("POST", `/api/studio/intents/${intent.name}/examples`, {text: add.value});
        say("✓ " + saved.saved); await loadIntents();
      })}, t.add)),
      el("div", {class: "two"}, column("zh", t.chinese), column("en", t.english)));
  }
  $("#intent-form").addEventListener("submit", guard(async (event) => {
    event.preventDefault();
    await api("POST", "/api/studio/intents", {name: event.target.name.value});
    currentIntent = event.target.name.value; event.target.reset(); await loadIntents();
  }));

  // ---- responses ----------------------------------------------------------------------------------------------
  async function loadResponses() {
    const responses = await api("GET", "/api/studio/responses");
    $("#response-list").replaceChildren(...responses.map((r) => responseEditor(r)));
  }
  function responseEditor(r) {
    const zh = el("textarea", {}, r.zh), en = el("textarea", {}, r.en);
    return el("div", {class: "response"}, el("h3", {}, r.name, r.extra.length ? " (+" + r.extra.join(", ") + ")" : ""),
      el("div", {class: "two"}, el("label", {}, t.chinese, zh), el("label", {}, t.english, en)),
      el("button", {onclick: guard(async () => {
        const saved = await api("PUT", "/api/studio/responses/" + r.name, {zh: zh.value, en: en.value});
        say("✓ " + saved.saved);
      })}, t.save));
  }
  $("#response-new").addEventListener("submit", (event) => {
    event.preventDefault();
    $("#response-list").prepend(responseEditor({name: event.target.name.value, zh: "", en: "", extra: []}));
  });

  // ---- knowledge base -----------------------------------------------------------------------------------------
  async function loadKb() {
    const q = $("#kb-search").q.value;
    const articles = await api("GET", "/api/kb/articles" + (q ? "?q=" + encodeURIComponent(q) : ""));
    $("#kb-list").replaceChildren(...articles.map((a) => el("li", {},
      el("a", {href: "#", onclick: (e) => { e.preventDefault(); openArticle(a.id); }},
        (a.published ? "" : "⊘ ") + a.id + " " + (a.title_zh || a.title_en)))));
  }
  $("#kb-search").addEventListener("submit", (event) => { event.preventDefault(); guard(loadKb)(); });
  $("#kb-new").addEventListener("click", () => openArticle(null, {}));

  const openArticle = guard(async (id, draft, fromGroup) => {
    const a = id ? await api("GET", "/api/kb/articles/" + id) : Object.assign(
      {id: "", department: "", title_zh: "", title_en: "", body_zh: "", body_en: "", tags: [], questions: [],
        published: true}, draft);
    const f = (name, value, tag) => el(tag || "input", {name, value: tag ? null : value}, tag ? value : null);
    const form = el("form", {class: "article"},
      el("p", {}, el("label", {}, t.id, " ", f("id", a.id)), " ",
        el("label", {}, t.department, " ", f("department", a.department)), " ",
        el("label", {}, el("input", {type: "checkbox", name: "published", checked: a.published}), t.published)),
      el("div", {class: "two"},
        el("div", {}, el("h3", {}, t.chinese), el("label", {}, t.article_title, f("title_zh", a.title_zh)),
          el("label", {}, t.body, f("body_zh", a.body_zh, "textarea"))),
        el("div", {}, el("h3", {}, t.english), el("label", {}, t.article_title, f("title_en", a.title_en)),
          el("label", {}, t.body, f("body_en", a.body_en, "textarea")))),
      el("label", {}, t.questions, f("questions", (a.questions || []).join("\n"), "textarea")),
      el("label", {}, t.tags, " ", f("tags", (a.tags || []).join(", "))),
      el("p", {}, el("button", {type: "submit"}, t.save),
        id ? el("button", {type: "button", onclick: guard(async () => {
          if (a.published) await api("DELETE", "/api/kb/articles/" + id);
          else await api("PUT", "/api/kb/articles/" + id, Object.assign(body(form), {published: true, note: "published"}));
          await loadKb(); openArticle(id);
        })}, a.published ? t.unpublish : t.publish) : null));
    if (id) form.id.readOnly = true;
    form.addEventListener("submit", guard(async (event) => {
      event.preventDefault();
      const data = body(form);
      if (id) await api("PUT", "/api/kb/articles/" + id, data);
      else await api("POST", "/api/kb/articles", Object.assign({id: form.id.value}, data));
      if (fromGroup) {
        await api("POST", "/api/studio/review/article",
          {keys: fromGroup.keys, text: fromGroup.text, article_id: form.id.value});
      }
      say("✓ " + form.id.value); await loadKb(); openArticle(form.id.value);
    }));
    const versions = el("div", {});
    if (id) {
      const rows = await api("GET", `/api/kb/articles/${id}/versions`);
      versions.append(el("h3", {}, t.versions), el("table", {}, rows.map((v) => el("tr", {},
        el("td", {}, "v" + v.version), el("td", {}, v.created_at.slice(0, 19).replace("T", " ")),
        el("td", {}, v.author || ""), el("td", {}, v.note || ""),
        el("td", {}, v.version === a.version ? "" : el("button", {onclick: guard(async () => {
          await api("POST", `/api/kb/articles/${id}/versions/${v.version}/restore`); openArticle(id);
        })}, t.restore))))));
    }
    $("#kb-editor").replaceChildren(form, versions);
  });
  function body(form) {
    const lines = (text, sep) => text.split(sep).map((s) => s.trim()).filter(Boolean);
    return {department: form.department.value, title_zh: form.title_zh.value, title_en: form.title_en.value,
      body_zh: form.body_zh.value, body_en: form.body_en.value, published: form.published.checked,
      questions: lines(form.questions.value, "\n"), tags: lines(form.tags.value, ",")};
  }

  // ---- train, evaluate, activate ------------------------------------------------------------------------------
  async function loadTrain() {
    const models = await api("GET", "/api/studio/models");
    $("#live-model").textContent = models.live || "-";
    $("#rollback").disabled = !models.can_roll_back;
    const jobs = await api("GET", "/api/studio/jobs");
    $("#job-list").replaceChildren(...jobs.map((j) => el("li", {},
      el("a", {href: "#", onclick: (e) => { e.preventDefault(); renderJob(j); }},
        `#${j.id} ${j.state} ${j.model || ""} ${j.live ? "● " + t.live : ""}`))));
    if (jobs.length) renderJob(jobs[0]);
  }
  function renderJob(job) {
    const box = $("#job");
    const parts = [el("h3", {}, `#${job.id} `, el("span", {class: "state", "data-state": job.state}, job.state)),
      el("progress", {max: 1, value: job.progress})];
    if (job.error) parts.push(el("pre", {class: "error"}, job.error));
    if (job.evaluation) parts.push(evaluationTable(job.evaluation));
    if (job.state === "ready" && !job.live) {
      parts.push(el("p", {}, el("button", {"data-testid": "activate", onclick: guard(async () => {
        say("…");
        const done = await api("POST", `/api/studio/jobs/${job.id}/activate`);
        say("✓ " + t.live_model + ": " + done.model); await loadTrain();
      })}, t.activate)));
    }
    if (job.log) parts.push(el("pre", {class: "log"}, job.log.split("\n").slice(-40).join("\n")));
    box.replaceChildren(...parts);
    if (["queued", "validating", "training", "evaluating"].includes(job.state)) {
      if (pollTimer) clearTimeout(pollTimer);
      pollTimer = setTimeout(guard(async () => {
        const fresh = await api("GET", "/api/studio/jobs/" + job.id);
        if (["ready", "failed"].includes(fresh.state)) await loadTrain(); else renderJob(fresh);
      }), 1500);
    }
  }
  function evaluationTable(e) {
    const pct = (x) => (100 * x).toFixed(1) + "%";
    const exampleRows = (rows, cls) => el("table", {class: cls}, el("tr", {}, el("th", {}, "text"),
      el("th", {}, t.intent), el("th", {}, t.live), el("th", {}, t.new_model)),
      rows.map((r) => el("tr", {}, el("td", {}, r.text), el("td", {}, r.intent),
        el("td", {}, `${r.live} ${r.live_confidence ?? ""}`), el("td", {}, `${r.new} ${r.new_confidence ?? ""}`))));
    return el("div", {class: "evaluation", "data-testid": "evaluation"},
      el("p", {class: e.recommended ? "better" : "worse"}, e.recommended ? t.recommended : t.not_recommended),
      el("table", {}, el("tr", {}, el("th", {}, ""), el("th", {}, t.live), el("th", {}, t.new_model)),
        el("tr", {}, el("td", {}, t.accuracy + ` (${e.examples} ${t.examples})`),
          el("td", {"data-testid": "live-accuracy"}, pct(e.live_accuracy)),
          el("td", {"data-testid": "new-accuracy"}, pct(e.new_accuracy)))),
      el("h4", {}, t.better), exampleRows(e.better, "better"),
      el("h4", {}, t.worse), exampleRows(e.worse, "worse"),
      el("h4", {}, t.per_intent), el("table", {}, e.per_intent.map((p) => el("tr", {},
        el("td", {}, p.intent), el("td", {}, p.support), el("td", {}, p.live_f1),
        el("td", {class: p.new_f1 < p.live_f1 ? "worse" : (p.new_f1 > p.live_f1 ? "better" : "")}, p.new_f1)))),
      el("h4", {}, t.confusions), el("table", {}, e.confusions.map((c) => el("tr", {},
        el("td", {}, c.intent), el("td", {}, "→ " + c.predicted), el("td", {}, c.count)))));
  }
  $("#train").addEventListener("click", guard(async () => {
    const job = await api("POST", "/api/studio/train");
    renderJob(job);
  }));
  $("#validate").addEventListener("click", guard(async () => {
    $("#validation").textContent = "…";
    const result = await api("POST", "/api/studio/validate");
    $("#validation").replaceChildren(el("p", {class: result.passed ? "better" : "worse"}, result.passed ? "✓" : "✗"),
      el("ul", {}, result.problems.map((p) => el("li", {}, p))));
  }));
  $("#rollback").addEventListener("click", guard(async () => {
    const done = await api("POST", "/api/studio/rollback");
    say("✓ " + t.live_model + ": " + done.model); await loadTrain();
  }));

  start();
})();
