// The saga console in the browser: sign in (the access token is kept in a cookie that only /console pages get),
// operate a parked saga through the admin API with that token, and follow a running saga by reloading its
// timeline every second. Served from the gateway itself: its content security policy allows no inline script.
"use strict";

const COOKIE = "sagashop_console";
const FOLLOW_EVERY_MS = 1000;

function token() {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${COOKIE}=`));
  return found ? decodeURIComponent(found.slice(COOKIE.length + 1)) : "";
}

function keep(value, seconds) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${COOKIE}=${encodeURIComponent(value)}; Path=/console; Max-Age=${seconds}; SameSite=Strict${secure}`;
}

async function problem(reply) {
  try {
    return (await reply.json()).detail || reply.statusText;
  } catch {
    return reply.statusText;
  }
}

async function signIn(form) {
  const reply = await fetch("/v1/auth/token", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({email: form.email.value, password: form.password.value}),
  });
  if (!reply.ok) {
    document.getElementById("login-error").textContent = await problem(reply);
    return;
  }
  const issued = await reply.json();
  keep(issued.access_token, issued.expires_in);
  location.reload();
}

async function operate(button) {
  const reason = document.getElementById("reason").value.trim();
  const request = {method: "POST", headers: {Authorization: `Bearer ${token()}`}};
  if (reason) {
    request.headers["Content-Type"] = "application/json";
    request.body = JSON.stringify({reason});
  }
  const url = `/v1/admin/sagas/${encodeURIComponent(button.dataset.saga)}/${button.dataset.action}`;
  const reply = await fetch(url, request);
  const outcome = reply.ok ? `${button.dataset.action}: done` : await problem(reply);
  await reload();
  document.getElementById("operate-result")?.replaceChildren(outcome);
  follow();
}

async function reload() {
  const section = document.getElementById("timeline");
  const reply = await fetch(`/console/sagas/${encodeURIComponent(section.dataset.saga)}/timeline`);
  if (reply.ok) {
    section.outerHTML = await reply.text();
  }
}

function follow() {
  const section = document.getElementById("timeline");
  if (section?.dataset.active === "true") {
    setTimeout(async () => {
      await reload();
      follow();
    }, FOLLOW_EVERY_MS);
  }
}

document.addEventListener("submit", (event) => {
  if (event.target.id === "login") {
    event.preventDefault();
    signIn(event.target);
  }
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (button?.id === "logout") {
    keep("", 0);
    location.assign("/console");
  } else if (button?.dataset.action) {
    operate(button);
  }
});

document.addEventListener("DOMContentLoaded", follow);
