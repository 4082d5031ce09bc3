// The Teams tab: the alert channel as Microsoft Teams shows it (threads: a
// root card and its replies, cards updated in place), dialogs, answers only
// the clicker sees, the person's 1:1 chat with the bot and a composer that
// mentions the bot. Every click is an activity the simulated Bot Framework
// signs and POSTs to the bot's /api/messages.
"use strict";

(function () {
  const { h } = window.Blocks;
  const Cards = window.Cards;
  const $ = (id) => document.getElementById(id);

  let env = null; // { api, me, names, time }
  let data = null;
  let dialogId = null;
  const seenNotices = new Set();
  let firstDraw = true;
  const drawn = {};

  function changed(part, value) {
    const sig = JSON.stringify(value);
    if (drawn[part] === sig) return false;
    drawn[part] = sig;
    return true;
  }

  function toast(text) {
    const t = $("teams-toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  function api(path, body) {
    return env.api("/api/teams/" + path, body);
  }

  function onAction(id) {
    return async (action, node) => {
      const card = node.closest(".ac-card");
      node.disabled = true;
      try {
        await api("click", { id, action: Cards.actionName(action), values: card ? Cards.values(card) : {} });
      } catch (e) {
        toast(e.message);
      } finally {
        setTimeout(() => { node.disabled = false; }, 600);
      }
    };
  }

  function initials(name) {
    return (name || "?").slice(0, 1).toUpperCase();
  }

  function post(m, cls) {
    const names = env.names();
    const who = m.author ? names[m.author] || m.author : "rerun-bot";
    const content = m.card
      ? Cards.render(m.card, { onAction: onAction(m.id) })
      : m.author ? h("div", { class: "t-text" }, cls === "chat" ? null : h("span", { class: "t-mention" }, "rerun-bot"), " ", m.text)
        : h("div", { class: "t-text" }, Cards.markdown(m.text));
    return h("div", {
      class: `t-msg ${cls || ""}${m.author ? " from-user" : " from-bot"}`, "data-id": m.id,
    },
    h("div", { class: "t-avatar" + (m.author ? " person" : "") }, m.author ? initials(who) : "R"),
    h("div", { class: "t-body" },
      h("div", { class: "t-meta" }, h("span", { class: "t-name" }, who),
        m.author ? null : h("span", { class: "t-badge" }, "Bot"),
        h("span", { class: "t-time" }, env.time(m.at)),
        m.edited ? h("span", { class: "t-edited" }, "Edited") : null),
      h("div", { class: "t-content" }, content)));
  }

  function notice(n) {
    return h("div", { class: "t-notice", "data-notice": String(n.id) },
      h("div", { class: "t-only-you" }, "👁 Only visible to you",
        h("button", {
          type: "button", class: "t-dismiss",
          onclick: () => api("dismiss", { id: n.id }).catch((e) => toast(e.message)),
        }, "Dismiss")),
      Cards.markdown(n.text));
  }

  function drawChannel() {
    const box = $("teams-messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const t = data.teams;
    const roots = t.messages.filter((m) => !m.root || m.root === m.id);
    const ids = new Set(roots.map((m) => m.id));
    const replies = {};
    for (const m of t.messages) {
      if (m.root && m.root !== m.id && ids.has(m.root)) (replies[m.root] = replies[m.root] || []).push(m);
    }
    const loose = [];
    const notes = {};
    for (const n of t.notices) {
      if (n.root && ids.has(n.root)) (notes[n.root] = notes[n.root] || []).push(n);
      else loose.push(n);
    }
    const list = roots.sort((a, b) => a.seq - b.seq).map((m) => {
      const rs = (replies[m.id] || []).map((r) => ({ seq: r.seq, el: post(r, "reply") }))
        .concat((notes[m.id] || []).map((n) => ({ seq: n.seq, el: notice(n) })))
        .sort((a, b) => a.seq - b.seq);
      const n = (replies[m.id] || []).length;
      return h("div", { class: "t-thread", "data-thread": m.id }, post(m, "root"),
        rs.length ? h("div", { class: "t-replies" },
          n ? h("div", { class: "t-replies-count" }, `${n} ${n === 1 ? "reply" : "replies"}`) : null,
          rs.map((r) => r.el)) : null);
    });
    box.replaceChildren(...(list.length ? list
      : [h("div", { class: "empty" }, "No posts yet: the simulated cluster's first Jobs are running…")]),
    ...loose.map(notice));
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function drawChat() {
    const box = $("teams-chat");
    const chat = data.teams.chat;
    box.replaceChildren(...(chat.length ? chat.map((m) => post(m, "chat"))
      : [h("div", { class: "empty small" }, "Answers meant for you alone (help, previews, refusals) arrive here.")]));
    box.scrollTop = box.scrollHeight;
  }

  function drawDialog() {
    const rootEl = $("teams-dialog-root");
    const d = data.teams.dialog;
    if (!d) { rootEl.replaceChildren(); dialogId = null; return; }
    if (d.id === dialogId) return;
    dialogId = d.id;
    const body = Cards.render(d.card, { noActions: true, onAction: () => {} });
    const close = () => api("close", {}).catch((e) => toast(e.message));
    const submit = async (btn) => {
      if (!Cards.validate(body)) return;
      btn.disabled = true;
      try {
        await api("submit", { values: Cards.values(body) });
      } catch (e) {
        toast(e.message);
      } finally {
        btn.disabled = false;
      }
    };
    const buttons = (d.card.actions || []).filter((a) => a.type === "Action.Submit" || a.type === "Action.Execute")
      .map((a, i) => {
        const btn = h("button", { type: "button", class: "ac-btn" + (i === 0 ? " primary" : ""), "data-role": i === 0 ? "submit" : null },
          a.title || "Submit");
        btn.addEventListener("click", () => submit(btn));
        return btn;
      });
    const form = h("div", { class: "t-dialog", role: "dialog", "data-dialog-id": String(d.id) },
      h("div", { class: "t-dialog-head" }, h("h1", {}, d.title || "rerun-bot"),
        h("button", { type: "button", class: "x", "aria-label": "Close", onclick: close }, "×")),
      h("div", { class: "t-dialog-body" }, body),
      h("div", { class: "t-dialog-foot" },
        h("button", { type: "button", class: "ac-btn", "data-role": "close", onclick: close }, "Cancel"), buttons));
    rootEl.replaceChildren(h("div", { class: "modal-overlay" }, form));
    const first = body.querySelector("textarea, input[type=text]");
    if (first) first.focus();
  }

  function drawPeople() {
    const names = env.names();
    $("teams-people").replaceChildren(...data.users.map((u) =>
      h("li", { class: u.id === env.me() ? "me" : "" }, `${u.name} · ${u.role}`)));
    $("teams-chat-title").textContent = `Chat with rerun-bot · ${names[env.me()] || ""}`;
  }

  function newNotices() {
    for (const n of data.teams.notices) {
      if (seenNotices.has(n.id)) continue;
      seenNotices.add(n.id);
      if (!firstDraw) toast(n.text.replace(/\\(.)/g, "$1").replace(/\*\*/g, ""));
    }
    firstDraw = false;
  }

  function draw(d, e) {
    data = d;
    env = e;
    if (!data.teams) return;
    drawPeople();
    newNotices();
    const me = env.me();
    if (changed("channel", [me, data.teams.messages, data.teams.notices])) drawChannel();
    if (changed("chat", [me, data.teams.chat])) drawChat();
    drawDialog();
  }

  // A new person: their dialog, not the last one's.
  function reset() {
    $("teams-dialog-root").replaceChildren();
    dialogId = null;
    firstDraw = true;
  }

  function composer(formId, inputId, chat) {
    $(formId).addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = $(inputId);
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      try {
        await api("command", { text, chat });
      } catch (err) {
        toast(err.message);
      }
    });
  }
  composer("teams-composer", "teams-command", false);
  composer("teams-chat-composer", "teams-chat-command", true);

  window.TeamsTab = { draw, reset };
})();
