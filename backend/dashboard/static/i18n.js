/* The dashboard's strings come from a catalogue (catalogues/<lang>.js), never from the code: t(key, vars)
   looks one up, fills {name} placeholders from vars and, where the entry is an object of plural forms,
   picks the form for vars.count. Elements marked data-i18n (text), data-i18n-label (aria-label),
   data-i18n-placeholder and data-i18n-title get theirs when the page starts (applyStrings).
   Same conventions as the commuter app's catalogues (backend/app/static/js/i18n.js). */
"use strict";

const I18N = { lang: "en" };

function catalogue(lang) {
  return (self.SAFETRAVEL_DASHBOARD_CATALOGUES || {})[lang] || {};
}

function t(key, vars = {}) {
  let text = catalogue(I18N.lang)[key] ?? catalogue("en")[key] ?? key;
  if (typeof text === "object") {
    const form = new Intl.PluralRules(I18N.lang).select(vars.count ?? 0);
    text = text[form] ?? text.other;
  }
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`));
}

function applyStrings(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-label]")) element.setAttribute("aria-label", t(element.dataset.i18nLabel));
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) element.setAttribute("placeholder", t(element.dataset.i18nPlaceholder));
  for (const element of root.querySelectorAll("[data-i18n-title]")) element.setAttribute("title", t(element.dataset.i18nTitle));
}
