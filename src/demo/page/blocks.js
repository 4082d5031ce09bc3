// Block Kit and mrkdwn, rendered the way Slack shows them: the blocks rerun-bot
// sends (header, section with text/fields/accessory, context, divider, actions
// with buttons, input with plain text / radio buttons / select).
"use strict";

(function () {
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "html") el.innerHTML = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  // Slack text carries &amp; &lt; &gt; only; everything else is literal.
  function decode(s) {
    return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }
  function esc(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  function fmtDate(ts, fallback) {
    const d = new Date(Number(ts) * 1000);
    if (isNaN(d.getTime())) return fallback;
    const now = new Date();
    const day = d.toDateString() === now.toDateString() ? "Today"
      : d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    return day + " " + d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  // One control sequence <…>: a mention, a date, a link.
  function control(inner, ctx) {
    let m;
    if ((m = /^@([UW][A-Z0-9_]+)(\|.*)?$/.exec(inner))) {
      const name = (ctx.users[m[1]] || m[1]);
      return `<span class="mention${m[1] === ctx.me ? " me" : ""}" data-user="${esc(m[1])}">@${esc(name)}</span>`;
    }
    if ((m = /^!subteam\^([A-Z0-9_]+)(\|(.*))?$/.exec(inner))) {
      return `<span class="mention">@${esc(decode(m[3] || m[1]))}</span>`;
    }
    if ((m = /^!date\^(\d+)\^[^|]*(\|(.*))?$/.exec(inner))) {
      return `<time datetime="${esc(m[1])}">${esc(fmtDate(m[1], decode(m[3] || "")))}</time>`;
    }
    if ((m = /^!(here|channel|everyone)/.exec(inner))) {
      return `<span class="mention">@${m[1]}</span>`;
    }
    if ((m = /^#(C[A-Z0-9_]+)(\|(.*))?$/.exec(inner))) {
      return `<span class="mention">#${esc(decode(m[3] || m[1]))}</span>`;
    }
    const [url, label] = inner.split("|", 2);
    const href = decode(url);
    if (/^(https?:|mailto:)/.test(href)) {
      return `<a href="${esc(href)}" target="_blank" rel="noopener noreferrer">${esc(decode(label || url))}</a>`;
    }
    return esc(decode(inner));
  }

  function inline(text, ctx) {
    const holes = [];
    const hold = (html) => { holes.push(html); return `\u0000${holes.length - 1}\u0000`; };
    let s = text.replace(/`([^`\n]+)`/g, (_, c) => hold(`<code>${esc(decode(c))}</code>`));
    s = s.replace(/<([^<>]+)>/g, (_, inner) => hold(control(inner, ctx)));
    s = esc(decode(s));
    const edge = "(^|[\\s(\\[>\"'.,;:!?\\u0000-])";
    const tail = "(?=$|[\\s)\\].,;:!?\"'\\u0000-])";
    s = s.replace(new RegExp(edge + "\\*([^*\\n]+?)\\*" + tail, "g"), "$1<b>$2</b>");
    s = s.replace(new RegExp(edge + "_([^_\\n]+?)_" + tail, "g"), "$1<i>$2</i>");
    s = s.replace(new RegExp(edge + "~([^~\\n]+?)~" + tail, "g"), "$1<s>$2</s>");
    s = s.split("\n").map((line) => line.startsWith("&gt; ")
      ? `<blockquote>${line.slice(5)}</blockquote>` : line).join("\n");
    s = s.replace(/\n/g, "<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
    return s.replace(/\u0000(\d+)\u0000/g, (_, i) => holes[Number(i)]);
  }

  // mrkdwn → HTML (safe: every piece of text is escaped).
  function mrkdwn(text, ctx) {
    const parts = String(text || "").split(/```([\s\S]*?)```/);
    return parts.map((p, i) => i % 2 === 1
      ? `<pre>${esc(decode(p.replace(/^\n/, "")))}</pre>`
      : inline(p, ctx)).join("");
  }

  function textObj(t, ctx) {
    if (!t) return null;
    if (t.type === "mrkdwn") return h("div", { class: "md", html: mrkdwn(t.text, ctx) });
    return h("span", { text: t.text });
  }

  function button(el, where, ctx) {
    const style = el.style === "primary" ? " primary" : el.style === "danger" ? " danger" : "";
    return h("button", {
      type: "button", class: "btn" + style, "data-action-id": el.action_id,
      onclick: (e) => { e.preventDefault(); ctx.onButton(where.block, where.element, el, e.currentTarget); },
    }, el.text ? el.text.text : el.action_id);
  }

  function inputElement(block, ctx) {
    const el = block.element || {};
    const id = block.block_id;
    const name = { name: id, "data-block-id": id };
    switch (el.type) {
      case "plain_text_input": {
        const ph = el.placeholder ? el.placeholder.text : null;
        if (el.multiline) {
          const ta = h("textarea", Object.assign({ placeholder: ph }, name));
          ta.value = el.initial_value || "";
          return ta;
        }
        const inp = h("input", Object.assign({ type: "text", placeholder: ph }, name));
        inp.value = el.initial_value || "";
        return inp;
      }
      case "radio_buttons":
        return h("div", { class: "radios", "data-block-id": id },
          (el.options || []).map((o) => h("label", { class: "radio" },
            h("input", {
              type: "radio", name: id, value: o.value,
              checked: !!(el.initial_option && el.initial_option.value === o.value),
            }), " ", o.text.text)));
      case "static_select": {
        const sel = h("select", name, (el.options || []).map((o) => h("option", { value: o.value }, o.text.text)));
        if (el.initial_option) sel.value = el.initial_option.value;
        return sel;
      }
      default:
        return h("div", { class: "small" }, `(${el.type} input)`);
    }
  }

  function block(b, i, ctx) {
    switch (b.type) {
      case "header":
        return h("div", { class: "blk blk-header" }, b.text ? b.text.text : "");
      case "section": {
        const body = h("div", { class: "text" }, textObj(b.text, ctx));
        if (b.fields && b.fields.length) {
          body.append(h("div", { class: "fields" }, b.fields.map((f) => textObj(f, ctx))));
        }
        const acc = b.accessory && b.accessory.type === "button"
          ? button(b.accessory, { block: i, element: null }, ctx) : null;
        return h("div", { class: "blk blk-section" }, body, acc);
      }
      case "context":
        return h("div", { class: "blk blk-context" },
          (b.elements || []).map((e) => e.type === "image" ? h("span", { text: e.alt_text || "" }) : textObj(e, ctx)));
      case "divider":
        return h("hr", { class: "blk-divider" });
      case "actions":
        return h("div", { class: "blk blk-actions" },
          (b.elements || []).map((e, j) => e.type === "button"
            ? button(e, { block: i, element: j }, ctx)
            : h("span", { class: "small" }, `(${e.type})`)));
      case "input": {
        const err = (ctx.errors || {})[b.block_id];
        return h("div", { class: "blk input-blk" + (err ? " has-error" : ""), "data-input": b.block_id },
          h("label", { class: "lbl" }, b.label ? b.label.text : b.block_id,
            b.optional ? h("span", { class: "optional" }, " (optional)") : null),
          inputElement(b, ctx),
          b.hint ? h("div", { class: "hint" }, b.hint.text) : null,
          h("div", { class: "field-error", "data-error-for": b.block_id }, err || ""));
      }
      case "image":
        return h("div", { class: "blk small" }, b.alt_text || "(image)");
      default:
        return h("div", { class: "blk small" }, `(${b.type} block)`);
    }
  }

  // Blocks → a DOM fragment. ctx: {users, me, onButton(block, element, el, node), errors}.
  function render(blocks, fallback, ctx) {
    const out = h("div", { class: "blocks" });
    if (!blocks || !blocks.length) {
      out.append(h("div", { class: "md", html: mrkdwn(fallback || "", ctx) }));
      return out;
    }
    blocks.forEach((b, i) => out.append(block(b, i, ctx)));
    return out;
  }

  window.Blocks = { h, mrkdwn, render, fmtDate };
})();
