// The saga console in the browser: sign in (the access token is kept in a cookie that only /console pages get),
// operate a parked saga through the admin API with that token, follow a running saga by reloading its timeline
// every second, and show its order's domain events beside it. Served from the gateway itself: its content security
// policy allows no inline script.
"use strict";

const COOKIE = "sagashop_console";
const FOLLOW_EVERY_MS = 1000;
const EVENTS_SETTLE_ROUNDS = 5; // reads of the events after the saga ended: they reach the reporting side later

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
  followEvents();
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

function cell(text, tag = "td") {
  const element = document.createElement(tag);
  element.textContent = text; // text, never markup: an event's payload is written as it came
  return element;
}

function eventsTable(events) {
  const table = document.createElement("table");
  table.className = "events";
  const head = table.createTHead().insertRow();
  ["event", "occurred", "payload"].forEach((heading) => head.append(cell(heading, "th")));
  const body = table.createTBody();
  for (const event of events) {
    const {order_id: _, ...rest} = event.payload;
    body.insertRow().append(cell(event.event_type), cell(event.occurred_at), cell(JSON.stringify(rest)));
  }
  return table;
}

async function showEvents(section) {
  const reply = await fetch(`/v1/orders/${encodeURIComponent(section.dataset.order)}/events`,
                            {headers: {Authorization: `Bearer ${token()}`}});
  const shown = section.querySelector("table, p");
  if (!reply.ok) {
    const why = cell(`events unavailable: ${await problem(reply)}`, "p");
    why.className = "error";
    shown.replaceWith(why);
  } else {
    const {items} = await reply.json();
    const empty = cell("no event of this order has arrived yet", "p");
    empty.className = "empty";
    shown.replaceWith(items.length ? eventsTable(items) : empty);
  }
}

let followingEvents = false;

async function followEvents(rounds = 0) {
  const section = document.getElementById("events");
  if (!section || (followingEvents && rounds === 0)) {
    return; // no events on this page, or they are followed already
  }
  followingEvents = true;
  await showEvents(section);
  const running = document.getElementById("timeline")?.dataset.active === "true";
  if (running || rounds < EVENTS_SETTLE_ROUNDS) {
    setTimeout(() => followEvents(running ? 1 : rounds + 1), FOLLOW_EVERY_MS);
  } else {
    followingEvents = false;
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

document.addEventListener("DOMContentLoaded", () => {
  follow();
  followEvents();
});
