// Every string on screen comes from a catalogue (catalogues/<lang>.js). The language is the one chosen
// in Settings, else the browser's first supported language, else English.
export const LANGUAGES = ["en", "cy", "pl"];
const CHOSEN = "safetravel.language";
let lang = "en";
let catalogue = {};
let fallback = {};

export function language() { return lang; }

export function preferred() {
  const chosen = localStorage.getItem(CHOSEN);
  if (LANGUAGES.includes(chosen)) return chosen;
  for (const tag of navigator.languages || [navigator.language]) {
    const base = (tag || "").toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export async function load(code, remember = false) {
  if (!LANGUAGES.includes(code)) code = "en";
  fallback = (await import("./catalogues/en.js")).default;
  catalogue = code === "en" ? fallback : (await import(`./catalogues/${code}.js`)).default;
  lang = code;
  if (remember) localStorage.setItem(CHOSEN, code);
  document.documentElement.lang = code;
  document.documentElement.dir = catalogue["meta.dir"] || "ltr";
  apply(document);
}

/** A string by key; {name} placeholders filled from vars; plural forms picked by vars.count. */
export function t(key, vars = {}) {
  let text = catalogue[key] ?? fallback[key] ?? key;
  if (typeof text === "object") {
    const form = new Intl.PluralRules(lang).select(vars.count ?? 0);
    text = text[form] ?? text.other;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`));
}

/** A label for one of the API's words (GET /meta's vocabulary): "word.<word>", else the word itself. */
export function word(value) {
  const key = `word.${value}`;
  return catalogue[key] ?? fallback[key] ?? value.replace(/_/g, " ");
}

export function apply(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-label]")) element.setAttribute("aria-label", t(element.dataset.i18nLabel));
}

export function formatTime(iso, timeZone) {
  return new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone }).format(new Date(iso));
}

export function formatDateTime(iso, timeZone) {
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short", timeZone }).format(new Date(iso));
}

export function formatDistance(metres) {
  if (metres < 1000) return t("unit.m", { n: new Intl.NumberFormat(lang).format(Math.round(metres / 10) * 10) });
  return t("unit.km", { n: new Intl.NumberFormat(lang, { maximumFractionDigits: 1 }).format(metres / 1000) });
}
