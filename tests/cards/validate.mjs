// Parses Adaptive Cards with Microsoft's own `adaptivecards` package, the way a
// client does, and reports everything it complains about.
//
//   node validate.mjs cards.json     (a JSON array of cards)
//
// Each card is parsed as Adaptive Cards 1.5 (what Teams renders) and validated;
// every parse or validation event is an error here, warnings included. On top of
// the parser: the root must say AdaptiveCard 1.5, a card must leave room under
// Teams' 100 KB message limit, and every property must be one the parser knows
// (it drops unknown ones silently; a typo such as `fonttype` would vanish).
// Exit 1 if anything was reported.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// The package's `lib/` is ESM without file extensions, which node cannot load;
// its UMD bundle needs no DOM to parse and validate.
const AC = createRequire(import.meta.url)("adaptivecards/dist/adaptivecards.js");

/// A Teams message must stay under 100 KB, envelope included.
const MAX_CARD_BYTES = 90_000;
/// Properties the parser does not model but hosts read: Teams' own extension.
const HOST_PROPERTIES = new Set(["msteams", "$schema"]);

const cards = JSON.parse(readFileSync(process.argv[2], "utf8"));
if (!Array.isArray(cards)) {
  console.error("expected a JSON array of cards");
  process.exit(1);
}

let problems = 0;
const report = (index, message) => {
  problems += 1;
  console.log(`card ${index}: ${message}`);
};

/// The property names the parser knows for a JSON object, by its `type` or,
/// for untyped ones, by the key it sits under.
function knownProperties(object, parentKey) {
  let instance;
  if (object.type === "AdaptiveCard") instance = new AC.AdaptiveCard();
  else if (typeof object.type === "string") {
    const registration =
      AC.GlobalRegistry.elements.findByName(object.type) ?? AC.GlobalRegistry.actions.findByName(object.type);
    if (registration) instance = new registration.objectType();
  } else if (parentKey === "facts") instance = new AC.Fact();
  else if (parentKey === "choices") instance = new AC.Choice();
  const names = new Set();
  if (instance) {
    const schema = instance.getSchema();
    for (let i = 0; i < schema.getCount(); i++) names.add(schema.getItemAt(i).name);
  }
  return names;
}

/// Keys of `input` that did not survive a parse and serialize and that the
/// parser has no property for (it leaves out defaults, and drops unknowns).
function dropped(input, output, path, parentKey, out) {
  if (Array.isArray(input)) {
    input.forEach((v, i) => dropped(v, Array.isArray(output) ? output[i] : undefined, `${path}[${i}]`, parentKey, out));
    return;
  }
  if (input === null || typeof input !== "object") return;
  // `data` is the author's own payload: anything goes.
  if (parentKey === "data") return;
  let known;
  for (const [key, value] of Object.entries(input)) {
    const here = `${path}.${key}`;
    if (output === undefined || output === null || !(key in output)) {
      if (HOST_PROPERTIES.has(key) || (Array.isArray(value) && value.length === 0)) continue;
      known ??= knownProperties(input, parentKey);
      if (!known.has(key)) out.push(here);
      continue;
    }
    dropped(value, output[key], here, key, out);
  }
}

cards.forEach((json, index) => {
  if (json === null || typeof json !== "object" || json.type !== "AdaptiveCard") {
    report(index, `not an AdaptiveCard: ${JSON.stringify(json).slice(0, 200)}`);
    return;
  }
  if (json.version !== "1.5") {
    report(index, `version is ${JSON.stringify(json.version)}, expected "1.5"`);
  }
  const bytes = Buffer.byteLength(JSON.stringify(json), "utf8");
  if (bytes > MAX_CARD_BYTES) {
    report(index, `${bytes} bytes: over ${MAX_CARD_BYTES}, no room under Teams' 100 KB message limit`);
  }

  const card = new AC.AdaptiveCard();
  const context = new AC.SerializationContext(AC.Versions.v1_5);
  card.parse(json, context);
  for (let i = 0; i < context.eventCount; i++) {
    const e = context.getEventAt(i);
    report(index, `parse: ${AC.ValidationEvent[e.event]}: ${e.message}`);
  }

  const results = card.validateProperties();
  for (const e of results.validationEvents) {
    report(index, `validate: ${AC.ValidationEvent[e.event]}: ${e.message}`);
  }

  const unknown = [];
  dropped(json, card.toJSON(new AC.SerializationContext(AC.Versions.v1_5)), "$", "", unknown);
  for (const path of unknown) {
    report(index, `unknown property ${path} (dropped by the parser)`);
  }
});

if (problems > 0) {
  console.log(`${problems} problem(s) in ${cards.length} card(s)`);
  process.exit(1);
}
console.log(`${cards.length} card(s) valid`);
