// The console's shell: sign-in, the identity and its tenants, what its permissions show, page switching.

import { session, get, el, clear, showError } from "./api.js";
import * as overview from "./overview.js";
import * as search from "./search.js";
import * as alerts from "./alerts.js";
import * as rules from "./rules.js";

// Each page, the permission it needs, and its module (`show` on entering, `hide` on leaving).
const PAGES = {
  overview: { needs: "dashboards:read", module: overview },
  search: { needs: "jobs:run", module: search },
  alerts: { needs: "alerts:read", module: alerts },
  rules: { needs: "alerts:read", module: rules },
};

let current = null;

function signedOut(message) {
  session.credential = null;
  session.identity = null;
  if (current) PAGES[current].module.hide?.();
  current = null;
  // Pages drop what the previous identity saw (a backtest still followed, its results).
  window.dispatchEvent(new CustomEvent("securewatch:signed-out"));
  document.getElementById("nav").hidden = true;
  document.getElementById("identity").hidden = true;
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== "signin";
  document.getElementById("signin-error").textContent = message || "";
  document.getElementById("credential").focus();
}

async function signIn(credential) {
  session.credential = credential;
  let identity;
  try {
    identity = await get("/api/v1/whoami");
  } catch (error) {
    signedOut(error.status === 401 ? "That credential was refused." : error.message);
    return;
  }
  session.identity = identity;
  // A remembered tenant the identity no longer sees is dropped.
  if (session.tenant && !identity.all_tenants && !identity.tenants.includes(session.tenant)) session.tenant = "";
  showIdentity(identity);
  for (const node of document.querySelectorAll("[data-needs]")) node.hidden = !session.can(node.dataset.needs);
  for (const link of document.querySelectorAll("#nav a")) link.hidden = !session.can(PAGES[link.dataset.page].needs);
  document.getElementById("nav").hidden = false;
  document.getElementById("identity").hidden = false;
  route();
}

function showIdentity(identity) {
  const roles = identity.roles.length ? identity.roles.join(", ") : "no roles";
  document.getElementById("who").textContent = `${identity.name} (${roles})`;
  const picker = document.getElementById("tenant");
  const several = identity.tenants.length > 1;
  picker.hidden = !several;
  document.getElementById("tenant-label").hidden = !several;
  if (several) {
    clear(picker, el("option", { value: "" }, "all of mine"), identity.tenants.map((tenant) => el("option", { value: tenant }, tenant)));
    picker.value = session.tenant;
  }
}

function route() {
  if (!session.identity) return;
  let name = location.hash.replace(/^#/, "").split("/")[0];
  const allowed = Object.keys(PAGES).filter((page) => session.can(PAGES[page].needs));
  if (!allowed.includes(name)) name = allowed[0];
  if (current && current !== name) PAGES[current].module.hide?.();
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  showError(null);
  if (!name) {
    document.getElementById("toast").textContent = "This credential holds none of the permissions the console's pages need.";
    return;
  }
  const entering = current !== name;
  current = name;
  PAGES[name].module.show(entering).catch(showError);
}

document.getElementById("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("credential");
  const credential = input.value.trim();
  input.value = "";
  signIn(credential);
});
document.getElementById("sign-out").addEventListener("click", () => { session.tenant = ""; signedOut(""); });
document.getElementById("tenant").addEventListener("change", (event) => {
  session.tenant = event.target.value;
  if (current) PAGES[current].module.show(true).catch(showError);
});
window.addEventListener("hashchange", route);
window.addEventListener("securewatch:unauthorized", () => signedOut("The credential is no longer accepted; sign in again."));

if (session.credential) signIn(session.credential);
else signedOut("");
