// The console's entry: the session (who is signed in), the banner, and the router over the URL's fragment.

import { ApiError, forgetKey, getJson, storedKey } from "./api.js";
import { clear } from "./dom.js";
import { renderDataset, renderDatasets } from "./views/datasets.js";
import { renderJob } from "./views/job.js";
import { renderJobs } from "./views/jobs.js";
import { renderModel, renderModels } from "./views/models.js";
import { renderSignIn } from "./views/signin.js";
import { renderWorkers } from "./views/workers.js";

const ROUTES = [
  [/^#\/jobs\/([\w-]+)$/, "jobs", renderJob],
  [/^#\/jobs$/, "jobs", renderJobs],
  [/^#\/models\/([\w-]+)$/, "models", renderModel],
  [/^#\/models$/, "models", renderModels],
  [/^#\/datasets\/([\w-]+)$/, "datasets", renderDataset],
  [/^#\/datasets$/, "datasets", renderDatasets],
  [/^#\/workers$/, "workers", renderWorkers],
];

let identity = null; // {tenant, tenant_id, key_id, read_only} of the signed-in key
let current = null; // the AbortController of the view on screen

// What every view gets: where to draw, who is signed in, a signal that fires when it leaves the screen.
function context(root, signal) {
  return {
    root,
    signal,
    identity,
    canWrite: identity !== null && !identity.read_only,
    fail: (error) => showError(error),
    navigate: (hash) => {
      window.location.hash = hash;
    },
  };
}

export function showError(error) {
  if (error && error.name === "AbortError") return;
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your key was refused; sign in again.");
    return;
  }
  const banner = document.getElementById("banner");
  banner.textContent = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error && error.message ? error.message : error);
  banner.hidden = false;
}

function hideBanner() {
  const banner = document.getElementById("banner");
  banner.hidden = true;
  banner.textContent = "";
}

function showIdentity() {
  const signedIn = identity !== null;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (signedIn) {
    document.getElementById("who-tenant").textContent = identity.tenant || identity.tenant_id;
    const scope = document.getElementById("who-scope");
    scope.textContent = identity.read_only ? "read-only" : "read-write";
    scope.className = `badge ${identity.read_only ? "scope-read" : "scope-write"}`;
  }
}

function signOut(message) {
  forgetKey();
  identity = null;
  showIdentity();
  route(message);
}

async function signedIn(who) {
  identity = who;
  showIdentity();
  if (!window.location.hash || window.location.hash === "#/signin") window.location.hash = "#/jobs";
  else route();
}

function route(message) {
  if (current) current.abort();
  current = new AbortController();
  hideBanner();
  const root = clear(document.getElementById("view"));
  if (identity === null) {
    renderSignIn(root, { onSignedIn: signedIn, message });
    return;
  }
  const hash = window.location.hash || "#/jobs";
  for (const link of document.querySelectorAll("#nav a")) link.classList.remove("active");
  for (const [pattern, sectionName, render] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    document.querySelector(`#nav a[data-section="${sectionName}"]`).classList.add("active");
    Promise.resolve(render(context(root, current.signal), ...match.slice(1))).catch(showError);
    return;
  }
  window.location.hash = "#/jobs";
}

async function start() {
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => route());
  let problem = null;
  if (storedKey()) {
    try {
      identity = await getJson("/v1/whoami");
    } catch (error) {
      forgetKey();
      identity = null;
      if (!(error instanceof ApiError && error.status === 401)) problem = error;
    }
  }
  showIdentity();
  route();
  if (problem) showError(problem);
}

start();
