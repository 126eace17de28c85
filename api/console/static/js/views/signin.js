// Sign-in with an API key: checked against /v1/whoami, then kept in sessionStorage for this tab only.

import { ApiError, getJson, storeKey } from "../api.js";
import { h } from "../dom.js";

export function renderSignIn(root, { onSignedIn, message }) {
  // The input has no name and the form no action: without this script nothing is ever sent, least of all in a URL.
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "tq_…",
    required: true,
  });
  const note = h("p", { id: "signin-error", class: "error", role: "alert", hidden: !message, text: message || "" });
  const button = h("button", { id: "sign-in", type: "submit", text: "Sign in" });
  const form = h(
    "form",
    { id: "signin-form", class: "panel signin", novalidate: true },
    h("h1", { text: "Sign in" }),
    h("p", { class: "hint", text: "Paste a TensorQ API key. It stays in this browser tab and is sent only in the Authorization header." }),
    h("label", { for: "api-key", text: "API key" }),
    input,
    note,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      note.textContent = "Enter an API key.";
      note.hidden = false;
      return;
    }
    button.disabled = true;
    try {
      const who = await getJson("/v1/whoami", { key });
      storeKey(key);
      input.value = "";
      await onSignedIn(who);
    } catch (error) {
      note.textContent = error instanceof ApiError && error.status === 401 ? "That key was refused." : `Could not sign in: ${error.message}`;
      note.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  root.append(form);
  input.focus();
}
