// The demo's chat page: the #alerts channel as Slack shows it, modals,
// ephemeral answers for the person acting, the composer, and the cluster;
// the Teams tab is drawn by teams.js from the same state.
"use strict";

(function () {
  const { h, render, fmtDate } = window.Blocks;
  const params = new URLSearchParams(location.search);
  let me = params.get("user") || "U_ALICE";
  try { me = params.get("user") || localStorage.getItem("rerun-demo-user") || me; } catch (e) { /* private mode */ }
  let tab = params.get("tab") || "slack";
  try { tab = params.get("tab") || localStorage.getItem("rerun-demo-tab") || tab; } catch (e) { /* private mode */ }
  let data = null;
  let modalId = null;
  let loading = false;
  let again = false;

  const $ = (id) => document.getElementById(id);

  async function api(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(Object.assign({ user: me }, body)),
    });
    const answer = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(answer.error || `HTTP ${res.status}`);
    return answer;
  }

  function toast(text) {
    const t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
  }

  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const res = await fetch(`/api/state?user=${encodeURIComponent(me)}`);
      if (res.ok) { data = await res.json(); draw(); }
    } catch (e) {
      // The demo stopped; the event stream reconnects when it is back.
    } finally {
      loading = false;
      if (again) { again = false; refresh(); }
    }
  }

  function names() {
    const m = { U_BOT: "rerun-bot" };
    for (const u of (data ? data.users : [])) m[u.id] = u.name;
    // Teams people are named by their Entra object id (audit trail, Jobs).
    for (const u of (data && data.teams ? data.teams.users : [])) m[u.aad] = m[u.id];
    return m;
  }

  function ctx(key, extra) {
    return Object.assign({
      users: names(), me,
      onButton: async (block, element, el, node) => {
        node.disabled = true;
        try {
          await api("/api/click", { key, block, element });
        } catch (e) {
          toast(e.message);
        } finally {
          setTimeout(() => { node.disabled = false; }, 600);
        }
      },
    }, extra || {});
  }

  function time(at) {
    return at ? fmtDate(Date.parse(at) / 1000, "") : "";
  }

  function messageEl(m, ephemeral) {
    const body = h("div", { class: "body" },
      h("div", { class: "meta" },
        h("span", { class: "name" }, "rerun-bot"), h("span", { class: "app-badge" }, "APP"),
        h("span", { class: "time" }, time(m.at)),
        m.edited ? h("span", { class: "edited" }, "(edited)") : null),
      ephemeral ? h("div", { class: "only-you" }, "👁 Only visible to you",
        h("button", {
          type: "button", class: "dismiss",
          onclick: () => api("/api/dismiss", { key: m.key }).catch((e) => toast(e.message)),
        }, "Dismiss")) : null,
      render(m.blocks, m.text, ctx(m.key)));
    return h("div", {
      class: "msg" + (ephemeral ? " ephemeral" : ""), "data-key": m.key, "data-ts": m.ts,
    }, h("div", { class: "avatar" }, "R"), body);
  }

  function drawMessages() {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const roots = [];
    const replies = {};
    const items = data.messages.map((m) => ({ m, eph: false }))
      .concat(data.ephemerals.map((m) => ({ m, eph: true })))
      .sort((a, b) => a.m.seq - b.m.seq);
    for (const it of items) {
      const t = it.m.thread_ts;
      if (t && t !== it.m.ts && data.messages.some((p) => p.ts === t)) {
        (replies[t] = replies[t] || []).push(it);
      } else {
        roots.push(it);
      }
    }
    const list = roots.map((it) => {
      const el = messageEl(it.m, it.eph);
      const rs = replies[it.m.ts];
      if (rs && rs.length) {
        const n = rs.filter((r) => !r.eph).length;
        const thread = h("div", { class: "thread", "data-thread": it.m.ts },
          rs.map((r) => messageEl(r.m, r.eph)));
        el.querySelector(".body").append(
          h("div", { class: "replies-link" }, `${n} ${n === 1 ? "reply" : "replies"}`), thread);
      }
      return el;
    });
    box.replaceChildren(...(list.length ? list
      : [h("div", { class: "empty" }, "No alerts yet: the simulated cluster's first Jobs are running…")]));
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function modalValues(root) {
    const values = {};
    for (const blk of root.querySelectorAll("[data-input]")) {
      const id = blk.getAttribute("data-input");
      const radio = blk.querySelector("input[type=radio]:checked");
      const field = blk.querySelector("textarea, input[type=text], select");
      if (radio) values[id] = radio.value;
      else if (field) values[id] = field.value;
    }
    return values;
  }

  function drawModal() {
    const rootEl = $("modal-root");
    const modal = data.modal;
    if (!modal) { rootEl.replaceChildren(); modalId = null; return; }
    if (modal.id !== modalId) {
      modalId = modal.id;
      const view = modal.view || {};
      const submit = h("button", { type: "submit", class: "btn primary", "data-role": "submit" },
        view.submit ? view.submit.text : "Submit");
      const close = async () => { await api("/api/close", {}).catch((e) => toast(e.message)); };
      const form = h("form", { class: "modal", "data-callback-id": view.callback_id || "" },
        h("div", { class: "modal-head" }, h("h1", {}, view.title ? view.title.text : ""),
          h("button", { type: "button", class: "x", "aria-label": "Close", onclick: close }, "×")),
        h("div", { class: "modal-body" }, render(view.blocks || [], "", ctx("modal"))),
        h("div", { class: "modal-foot" },
          h("button", { type: "button", class: "btn", "data-role": "close", onclick: close },
            view.close ? view.close.text : "Cancel"), submit));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        submit.disabled = true;
        try {
          await api("/api/submit", { values: modalValues(form) });
        } catch (err) {
          toast(err.message);
        } finally {
          submit.disabled = false;
        }
      });
      rootEl.replaceChildren(h("div", { class: "modal-overlay" }, form));
    }
    // Errors change in place: what was typed stays.
    const errors = modal.errors || {};
    for (const blk of rootEl.querySelectorAll("[data-input]")) {
      const id = blk.getAttribute("data-input");
      blk.classList.toggle("has-error", !!errors[id]);
      blk.querySelector(".field-error").textContent = errors[id] || "";
    }
  }

  function pill(kind, text) {
    return h("span", { class: `pill ${kind}` }, text || kind);
  }

  function drawCluster() {
    const c = data.cluster;
    const users = names();
    $("cronjobs").replaceChildren(
      h("tr", {}, h("th", {}, "CronJob"), h("th", {}, "Schedule"), h("th", {}, "State")),
      ...c.cronjobs.map((cj) => h("tr", {
        "data-cronjob": `${cj.namespace}/${cj.name}`, "data-suspended": String(cj.suspended),
      },
        h("td", {}, h("span", { class: "small" }, cj.namespace + "/"), cj.name,
          cj.on_hold === "terminate" ? h("div", { class: "small" }, "on-hold: terminate") : null),
        h("td", { class: "mono" }, cj.schedule,
          cj.next ? h("div", { class: "small" }, "next " + time(cj.next)) : null),
        h("td", {}, cj.suspended ? pill("suspended") : pill("scheduled"),
          cj.held_by ? h("div", { class: "small" }, "held by " + (users[cj.held_by] || cj.held_by)) : null,
          cj.active ? h("div", { class: "small" }, `${cj.active} active`) : null))));
    $("jobs").replaceChildren(
      h("tr", {}, h("th", {}, "Job"), h("th", {}, "State")),
      ...(c.jobs.length ? c.jobs.map((j) => h("tr", { "data-job": `${j.namespace}/${j.name}`, "data-state": j.state },
        h("td", { class: "mono" }, h("span", { class: "small" }, j.namespace + "/"), j.name,
          j.rerun ? h("div", { class: "small" },
            `rerun · asked by ${users[j.requested_by] || j.requested_by || "?"}, approved by ${users[j.approved_by] || j.approved_by || "?"}`) : null),
        h("td", {}, pill(j.state), j.rerun ? pill("rerun") : null,
          j.reason ? h("div", { class: "small" }, j.reason) : null)))
        : [h("tr", {}, h("td", { colspan: "2", class: "small" }, "no Jobs yet"))]));
    $("audit").replaceChildren(...(data.audit.length ? data.audit.map((a) => h("li", { "data-action": a.action },
      h("span", { class: "small" }, time(a.at) + " "),
      h("span", { class: "what" }, a.action), " ", h("span", { class: "mono" }, a.subject || ""),
      h("div", { class: "small" }, "by " + (users[a.actor] || a.actor))))
      : [h("li", { class: "small" }, "nothing recorded yet")]));
  }

  function drawPeople() {
    const sel = $("user");
    if (!sel.options.length) {
      for (const u of data.users) sel.append(h("option", { value: u.id }, `${u.name} (${u.role})`));
    }
    sel.value = me;
    $("people").replaceChildren(...data.users.map((u) =>
      h("li", { class: u.id === me ? "me" : "" }, `${u.name} · ${u.role}`)));
  }

  // Redraw only what changed: buttons stay put, selections survive.
  const drawn = {};
  function changed(part, value) {
    const sig = JSON.stringify(value);
    if (drawn[part] === sig) return false;
    drawn[part] = sig;
    return true;
  }

  function draw() {
    drawPeople();
    if (changed("messages", [me, data.messages, data.ephemerals])) drawMessages();
    drawModal();
    if (changed("cluster", [data.cluster, data.audit])) drawCluster();
    window.TeamsTab.draw(data, { api, me: () => me, names, time });
    document.body.setAttribute("data-user", me);
    document.body.setAttribute("data-version", String(data.version));
  }

  $("user").addEventListener("change", (e) => {
    me = e.target.value;
    try { localStorage.setItem("rerun-demo-user", me); } catch (err) { /* private mode */ }
    $("modal-root").replaceChildren();
    modalId = null;
    window.TeamsTab.reset();
    refresh();
  });

  function showTab(name) {
    tab = name === "teams" ? "teams" : "slack";
    document.body.setAttribute("data-tab", tab);
    for (const b of document.querySelectorAll("[data-tab-button]")) {
      b.setAttribute("aria-selected", String(b.dataset.tabButton === tab));
    }
    try { localStorage.setItem("rerun-demo-tab", tab); } catch (err) { /* private mode */ }
  }
  for (const b of document.querySelectorAll("[data-tab-button]")) {
    b.addEventListener("click", () => showTab(b.dataset.tabButton));
  }
  showTab(tab);

  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("command");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    try {
      await api("/api/command", { text });
    } catch (err) {
      toast(err.message);
    }
  });

  const events = new EventSource("/api/events");
  events.onmessage = () => refresh();
  events.onopen = () => refresh();
  refresh();
})();
