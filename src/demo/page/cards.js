// Adaptive Cards (1.5), rendered the way Microsoft Teams shows the ones
// rerun-bot sends: TextBlock with Teams' markdown subset (bold, italic, links,
// lists, backslash escapes, {{DATE()}}/{{TIME()}}), FactSet, Container,
// ColumnSet, RichTextBlock, ActionSet and card actions as buttons, and the
// inputs of dialogs (Input.Text, Input.ChoiceSet, Input.Toggle, …).
"use strict";

(function () {
  const { h } = window.Blocks;

  // ----- text -----------------------------------------------------------------

  // Teams evaluates these before markdown; the bot breaks `{{` in untrusted text.
  function template(s) {
    return s.replace(/\{\{(DATE|TIME)\(([^),\s]+)(?:\s*,\s*(SHORT|LONG|COMPACT))?\)\}\}/g,
      (all, fn, iso, style) => {
        const d = new Date(iso);
        if (isNaN(d.getTime())) return all;
        if (fn === "TIME") return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
        if (style === "LONG") return d.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
        if (style === "SHORT") return d.toLocaleDateString(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric" });
        return d.toLocaleDateString();
      });
  }

  const PUNCT = /[!-/:-@[-`{-~]/;
  const WORD = /[\p{L}\p{N}]/u;

  // The index of `tok` in `s` from `from`, skipping backslash escapes; -1 if none.
  function find(s, tok, from, closing) {
    for (let i = from; i <= s.length - tok.length; i++) {
      if (s[i] === "\\") { i++; continue; }
      if (s.startsWith(tok, i) && (!closing || closing(i))) return i;
    }
    return -1;
  }

  function safeUrl(url) {
    return /^(https?:|mailto:)/i.test(url) ? url : null;
  }

  // Inline markdown → nodes: **bold**, _italic_ / *italic*, [text](url), \x.
  function inline(s) {
    const out = [];
    let buf = "";
    const flush = () => { if (buf) { out.push(document.createTextNode(buf)); buf = ""; } };
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      if (c === "\\" && i + 1 < s.length && PUNCT.test(s[i + 1])) {
        buf += s[i + 1];
        i += 2;
        continue;
      }
      if (c === "*" && s[i + 1] === "*") {
        const j = find(s, "**", i + 2);
        if (j > i + 2) {
          flush();
          out.push(h("strong", {}, inline(s.slice(i + 2, j))));
          i = j + 2;
          continue;
        }
      }
      if ((c === "_" || c === "*") && s[i + 1] && s[i + 1] !== " " && !(i > 0 && WORD.test(s[i - 1]) && c === "_")) {
        const j = find(s, c, i + 1, (k) => s[k - 1] !== " " && !(c === "_" && WORD.test(s[k + 1] || "")));
        if (j > i + 1) {
          flush();
          out.push(h("em", {}, inline(s.slice(i + 1, j))));
          i = j + 1;
          continue;
        }
      }
      if (c === "[") {
        const j = find(s, "](", i + 1);
        const k = j > 0 ? s.indexOf(")", j + 2) : -1;
        const url = k > 0 ? safeUrl(s.slice(j + 2, k)) : null;
        if (url) {
          flush();
          out.push(h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, inline(s.slice(i + 1, j))));
          i = k + 1;
          continue;
        }
      }
      buf += c;
      i++;
    }
    flush();
    return out;
  }

  // Block markdown: paragraphs (a line each), `- ` / `* ` and `1. ` lists.
  function markdown(text) {
    const box = h("div", { class: "ac-md" });
    let list = null;
    for (const line of template(String(text || "")).split("\n")) {
      const bullet = /^\s*[-*+] (.*)$/.exec(line);
      const number = /^\s*(\d+)\. (.*)$/.exec(line);
      if (bullet || number) {
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = h(tag, number ? { start: number[1] } : {});
          box.append(list);
        }
        list.append(h("li", {}, inline(bullet ? bullet[1] : number[2])));
        continue;
      }
      list = null;
      if (line.trim()) box.append(h("p", {}, inline(line)));
    }
    return box;
  }

  // ----- elements -------------------------------------------------------------

  function classes(b, base) {
    const c = [base];
    if (b.spacing) c.push("ac-sp-" + String(b.spacing).toLowerCase());
    if (b.separator) c.push("ac-separator");
    return c;
  }

  function textBlock(b) {
    const c = classes(b, "ac-text");
    if (b.size) c.push("ac-size-" + String(b.size).toLowerCase());
    if (b.weight) c.push("ac-weight-" + String(b.weight).toLowerCase());
    if (b.color) c.push("ac-color-" + String(b.color).toLowerCase());
    if (b.isSubtle) c.push("ac-subtle");
    if (b.fontType === "Monospace") c.push("ac-mono");
    if (b.style === "heading") c.push("ac-heading");
    if (b.wrap === false) c.push("ac-nowrap");
    const el = markdown(b.text);
    el.className = c.concat("ac-md").join(" ");
    if (b.style === "heading") el.setAttribute("role", "heading");
    return el;
  }

  function richText(b) {
    return h("div", { class: classes(b, "ac-text").join(" ") }, (b.inlines || []).map((r) => {
      if (typeof r === "string") return r;
      const c = [];
      if (r.weight === "Bolder") c.push("ac-weight-bolder");
      if (r.italic) c.push("ac-italic");
      if (r.fontType === "Monospace") c.push("ac-mono");
      if (r.color) c.push("ac-color-" + String(r.color).toLowerCase());
      if (r.isSubtle) c.push("ac-subtle");
      return h("span", { class: c.join(" ") }, template(r.text || ""));
    }));
  }

  function factSet(b) {
    return h("table", { class: classes(b, "ac-facts").join(" ") }, (b.facts || []).map((f) =>
      h("tr", {}, h("th", {}, markdown(f.title)), h("td", {}, markdown(f.value)))));
  }

  function label(b) {
    if (!b.label) return null;
    return h("label", { class: "ac-label", for: "ac-in-" + b.id },
      template(b.label), b.isRequired ? h("span", { class: "ac-required" }, " *") : null);
  }

  function input(b) {
    const wrap = h("div", {
      class: classes(b, "ac-input").join(" "), "data-input-id": b.id, "data-type": b.type,
      "data-required": b.isRequired ? "true" : null, "data-error-message": b.errorMessage || null,
    }, label(b));
    const id = "ac-in-" + b.id;
    let field;
    if (b.type === "Input.Text") {
      field = b.isMultiline
        ? h("textarea", { id, placeholder: b.placeholder || null, maxlength: b.maxLength || null, rows: "3" })
        : h("input", { id, type: "text", placeholder: b.placeholder || null, maxlength: b.maxLength || null });
      field.value = b.value || "";
    } else if (b.type === "Input.ChoiceSet") {
      const chosen = String(b.value || "").split(",");
      if (b.style === "expanded" || b.isMultiSelect) {
        field = h("div", { class: "ac-choices", id }, (b.choices || []).map((ch) => h("label", { class: "ac-choice" },
          h("input", {
            type: b.isMultiSelect ? "checkbox" : "radio", name: id, value: ch.value,
            checked: chosen.includes(ch.value),
          }), " ", template(ch.title || ch.value))));
      } else {
        field = h("select", { id }, b.placeholder ? h("option", { value: "" }, b.placeholder) : null,
          (b.choices || []).map((ch) => h("option", { value: ch.value }, template(ch.title || ch.value))));
        field.value = b.value || "";
      }
    } else if (b.type === "Input.Toggle") {
      field = h("label", { class: "ac-choice" }, h("input", {
        id, type: "checkbox", "data-on": b.valueOn || "true", "data-off": b.valueOff || "false",
        checked: (b.value || b.valueOff || "false") === (b.valueOn || "true"),
      }), " ", template(b.title || ""));
    } else {
      const type = { "Input.Number": "number", "Input.Date": "date", "Input.Time": "time" }[b.type] || "text";
      field = h("input", { id, type, placeholder: b.placeholder || null });
      field.value = b.value !== undefined ? String(b.value) : "";
    }
    wrap.append(field, h("div", { class: "ac-input-error", "data-error-for": b.id }));
    return wrap;
  }

  function actionName(a) {
    return a.verb || (a.data && a.data.verb) || a.title || "";
  }

  function action(a, ctx) {
    if (a.type === "Action.OpenUrl") {
      const url = safeUrl(a.url || "");
      return h("a", { class: "ac-btn", href: url, target: "_blank", rel: "noopener noreferrer" }, a.title || url);
    }
    if (a.type === "Action.ShowCard") {
      const shown = h("div", { class: "ac-showcard", hidden: true }, a.card ? render(a.card, ctx) : null);
      const btn = h("button", { type: "button", class: "ac-btn", onclick: () => { shown.hidden = !shown.hidden; } }, a.title || "…");
      return [btn, shown];
    }
    if (a.type !== "Action.Execute" && a.type !== "Action.Submit") return null;
    const style = a.style === "positive" ? " positive" : a.style === "destructive" ? " destructive" : "";
    const btn = h("button", {
      type: "button", class: "ac-btn" + style, "data-verb": actionName(a), "data-action-type": a.type,
      title: a.tooltip || null,
    }, a.title || actionName(a));
    btn.addEventListener("click", () => { if (ctx.onAction) ctx.onAction(a, btn); });
    return btn;
  }

  function actions(list, ctx) {
    const items = (list || []).map((a) => action(a, ctx)).flat().filter(Boolean);
    const buttons = items.filter((el) => !el.classList.contains("ac-showcard"));
    const cards = items.filter((el) => el.classList.contains("ac-showcard"));
    return h("div", { class: "ac-actions-wrap" }, h("div", { class: "ac-actions" }, buttons), cards);
  }

  function element(b, ctx) {
    if (!b || typeof b !== "object" || b.isVisible === false) return null;
    switch (b.type) {
      case "TextBlock": return textBlock(b);
      case "RichTextBlock": return richText(b);
      case "FactSet": return factSet(b);
      case "Container": {
        const c = classes(b, "ac-container");
        if (b.style) c.push("ac-style-" + String(b.style).toLowerCase());
        return h("div", { class: c.join(" ") }, elements(b.items, ctx));
      }
      case "ColumnSet":
        return h("div", { class: classes(b, "ac-columns").join(" ") }, (b.columns || []).map((col) => {
          const w = col.width;
          const style = w === "auto" ? "flex: 0 0 auto" : /^\d+px$/.test(String(w)) ? `flex: 0 0 ${w}`
            : Number(w) > 0 ? `flex: ${Number(w)} 1 0` : "flex: 1 1 0";
          return h("div", { class: "ac-column", style }, elements(col.items, ctx));
        }));
      case "ActionSet": return h("div", { class: classes(b, "ac-actionset").join(" ") }, actions(b.actions, ctx));
      case "Image": return h("div", { class: "ac-image" }, b.altText ? `[${b.altText}]` : null);
      default:
        if (String(b.type).startsWith("Input.")) return input(b);
        return null;
    }
  }

  function elements(list, ctx) {
    return (list || []).map((b) => element(b, ctx)).filter(Boolean);
  }

  // The card: its body, then (unless `ctx.noActions`) its actions.
  function render(card, ctx) {
    ctx = ctx || {};
    const root = h("div", { class: "ac-card" }, elements(card && card.body, ctx));
    if (card && card.actions && card.actions.length && !ctx.noActions) root.append(actions(card.actions, ctx));
    return root;
  }

  // ----- inputs ---------------------------------------------------------------

  // Input id → value as Teams sends it (a ChoiceSet's values comma-joined).
  function values(root) {
    const out = {};
    for (const wrap of root.querySelectorAll("[data-input-id]")) {
      const id = wrap.getAttribute("data-input-id");
      const type = wrap.getAttribute("data-type");
      if (type === "Input.ChoiceSet" && wrap.querySelector(".ac-choices")) {
        out[id] = [...wrap.querySelectorAll("input:checked")].map((i) => i.value).join(",");
      } else if (type === "Input.Toggle") {
        const box = wrap.querySelector("input");
        out[id] = box.checked ? box.dataset.on : box.dataset.off;
      } else {
        const field = wrap.querySelector("textarea, input, select");
        out[id] = field ? field.value : "";
      }
    }
    return out;
  }

  // Teams checks `isRequired` before it sends: the input's errorMessage under it.
  function validate(root) {
    let ok = true;
    const typed = values(root);
    for (const wrap of root.querySelectorAll("[data-input-id]")) {
      const id = wrap.getAttribute("data-input-id");
      const missing = wrap.dataset.required === "true" && !String(typed[id] || "").trim();
      wrap.classList.toggle("ac-invalid", missing);
      wrap.querySelector(".ac-input-error").textContent = missing
        ? (wrap.dataset.errorMessage || "This field is required.") : "";
      if (missing) ok = false;
    }
    return ok;
  }

  window.Cards = { render, values, validate, markdown, actionName };
})();
