// Settings: the language, and Delete my data (DELETE /me) behind a confirmation saying what goes and
// what stays; afterwards the phone forgets everything and signs in as a new anonymous user.
import { call } from "../api.js";
import { forget } from "../auth.js";
import { language, load, t } from "../i18n.js";
import { clearAll } from "../store.js";

const $ = (id) => document.getElementById(id);

export function init({ onLanguage, onDeleted }) {
  $("language").addEventListener("change", async () => { await load($("language").value, true); onLanguage(); });
  $("delete-data").addEventListener("click", () => { $("delete-error").textContent = ""; $("delete-dialog").showModal(); });
  $("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
  $("delete-confirm").addEventListener("click", async () => {
    try {
      await call("DELETE", "/me");
    } catch (error) {
      $("delete-error").textContent = t("delete.failed", { message: error.message });
      return;
    }
    await forget();
    await clearAll();
    $("delete-dialog").close();
    $("settings-status").textContent = t("delete.done");
    onDeleted();
  });
}

export function show() { $("language").value = language(); $("settings-status").textContent = ""; }
