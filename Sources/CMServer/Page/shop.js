"use strict";
// The shop page: only cm-server's public API, relative URLs (it works under an ingress prefix),
// and every value from the API inserted with textContent.
(function () {
  const base = new URL(location.pathname.endsWith("/") ? location.pathname : location.pathname + "/", location.origin);
  const $ = (id) => document.getElementById(id);
  const fields = ["username", "userid", "price", "timestamp"];
  const rows = new Map(); // purchaseId -> <tr>
  let cursor = null;
  let listedUser = null;
  // One Idempotency-Key per purchase attempt: Buy pressed again with the same form after an
  // answer that did not settle it (none, a 429 or a 5xx) sends the same key, so the shop stores
  // the purchase at most once; any other form, or a settled answer, starts a new attempt.
  let attempt = null; // { body, key }

  // A random (version 4) UUID; crypto.randomUUID needs a secure context, which a plain-HTTP
  // ingress is not.
  function newKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  $("timestamp").value = new Date().toISOString();

  // The bearer token (AUTH_MODE=jwt): kept in this tab only (sessionStorage), never in
  // localStorage or a cookie. Its claims are read here only to say who is signed in and fill the
  // form; cm-server verifies the token on every request.
  const tokenKey = "scalable-shop-token";
  let token = sessionStorage.getItem(tokenKey);

  function claimsOf(text) {
    const parts = text.split(".");
    if (parts.length !== 3) return null;
    try {
      const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
      const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === "object" ? claims : null;
    } catch (_) {
      return null;
    }
  }

  function showSignedIn() {
    const claims = token ? claimsOf(token) : null;
    $("sign-out").hidden = !claims;
    if (!claims) {
      $("who").textContent = "Not signed in. A shop that requires it (AUTH_MODE=jwt) needs a token.";
      return;
    }
    const admin = String(claims.scope || "").split(" ").includes("shop:admin") ? ", may read every user" : "";
    const expires = typeof claims.exp === "number" ? "; expires " + new Date(claims.exp * 1000).toISOString() : "";
    $("who").textContent = "Signed in as " + claims.preferred_username + " (user id " + claims.sub + admin + ")" + expires;
  }

  function useToken() {
    const text = $("token").value.trim().replace(/^Bearer\s+/i, "");
    $("token-error").textContent = "";
    const claims = claimsOf(text);
    if (!claims) {
      $("token-error").textContent = "This is not a JWT (three base64url parts separated by dots)";
      $("token").focus();
      return;
    }
    token = text;
    sessionStorage.setItem(tokenKey, token);
    $("token").value = "";
    if (typeof claims.preferred_username === "string") $("username").value = claims.preferred_username;
    if (typeof claims.sub === "string") $("userid").value = claims.sub;
    showSignedIn();
    say("", false);
  }

  function signOut() {
    token = null;
    sessionStorage.removeItem(tokenKey);
    showSignedIn();
  }

  function withToken(options) {
    if (!token) return options;
    return { ...options, headers: { ...(options.headers || {}), Authorization: "Bearer " + token } };
  }

  function say(text, failed) {
    $("message").textContent = text;
    $("message").className = failed ? "failed" : "";
  }

  function clearErrors() {
    for (const name of fields) {
      $(name + "-error").textContent = "";
      $(name).removeAttribute("aria-invalid");
    }
  }

  // fetch with a deadline, so a slow or failing backend never freezes the page.
  async function call(path, options, seconds) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), seconds * 1000);
    try {
      const response = await fetch(new URL(path, base), { ...withToken(options), signal: controller.signal });
      let body = {};
      try { body = await response.json(); } catch (_) { body = {}; }
      return { status: response.status, body, retryAfter: response.headers.get("Retry-After"), tag: response.headers.get("ETag") };
    } catch (error) {
      return { status: 0, body: { message: error.name === "AbortError" ? "cm-server did not answer in time; try again" : "cm-server cannot be reached; try again" } };
    } finally {
      clearTimeout(timer);
    }
  }

  // 401, 403 and 429 say what to do; other errors name the field they are about.
  function showErrors(body, status, retryAfter) {
    if (status === 401) {
      $("token-error").textContent = token ? "The shop refused this token; paste a new one" : "Paste a token to sign in";
      $("token").focus();
      return say("Sign in first: " + (body.message || "a token is required"), true);
    }
    if (status === 429) {
      return say("Too many requests: try again in " + (retryAfter || "a few") + " s", true);
    }
    let placed = false;
    for (const error of body.errors || []) {
      if (fields.includes(error.field)) {
        $(error.field + "-error").textContent = error.reason;
        $(error.field).setAttribute("aria-invalid", "true");
        placed = true;
      }
    }
    if (placed) {
      const first = fields.find((name) => $(name).getAttribute("aria-invalid") === "true");
      if (first) $(first).focus();
    }
    say((status === 403 ? "Not allowed: " : "") + (body.message || "The request failed"), true);
  }

  function row(item, state) {
    let tr = rows.get(item.purchaseId);
    if (!tr) {
      tr = document.createElement("tr");
      for (let i = 0; i < 5; i++) tr.appendChild(document.createElement("td"));
      rows.set(item.purchaseId, tr);
    }
    const cells = tr.children;
    cells[0].textContent = item.timestamp;
    cells[1].textContent = item.price;
    cells[2].textContent = item.userid;
    cells[3].textContent = item.purchaseId;
    cells[4].textContent = state;
    cells[4].className = "state-" + state;
    tr.dataset.purchaseId = item.purchaseId;
    return tr;
  }

  function listPath(username, after) {
    let path = "getAllUserBuys/" + encodeURIComponent(username) + "?limit=20";
    if (after) path += "&cursor=" + encodeURIComponent(after);
    return path;
  }

  async function list(more) {
    const username = $("username").value;
    clearErrors();
    if (!more) {
      cursor = null;
      listedUser = username;
      $("listed-user").textContent = "of " + username;
      rows.clear();
      $("purchases").tBodies[0].replaceChildren();
    }
    $("list").disabled = true;
    const { status, body, retryAfter } = await call(listPath(listedUser, more ? cursor : null), {}, 10);
    $("list").disabled = false;
    if (status !== 200) return showErrors(body, status, retryAfter);
    const tbody = $("purchases").tBodies[0];
    for (const item of body.purchases || []) tbody.appendChild(row(item, "stored"));
    cursor = body.nextCursor || null;
    $("more").hidden = !cursor;
    say((body.purchases || []).length === 0 && !more ? "No purchases for " + listedUser : "", false);
  }

  // Follows a purchase until cm-api lists it: "sent to Kafka" turns into "stored".
  // Each poll sends back the tag of the page it last got: while nothing was stored, the shop
  // answers 304 after looking at the page's keys alone.
  async function follow(username, purchaseId) {
    let known = null;
    for (let attempt = 0; attempt < 60; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { status, body, tag } = await call(listPath(username, null), known ? { headers: { "If-None-Match": known } } : {}, 5);
      if (status === 200) known = tag;
      if (status === 200 && (body.purchases || []).some((item) => item.purchaseId === purchaseId)) {
        const tr = rows.get(purchaseId);
        if (tr) { tr.children[4].textContent = "stored"; tr.children[4].className = "state-stored"; }
        say("Stored: " + purchaseId, false);
        return;
      }
    }
    say("Sent to Kafka but not stored yet: " + purchaseId + " (cm-api may be behind)", true);
  }

  async function buy(event) {
    event.preventDefault();
    clearErrors();
    const purchase = { username: $("username").value, userid: $("userid").value, price: $("price").value };
    if ($("timestamp").value.trim() !== "") purchase.timestamp = $("timestamp").value.trim();
    const payload = JSON.stringify(purchase);
    const retrying = attempt !== null && attempt.body === payload;
    if (!retrying) attempt = { body: payload, key: newKey() };
    $("buy").disabled = true;
    say(retrying ? "Sending again (same purchase, stored at most once)…" : "Sending…", false);
    const { status, body, retryAfter } = await call("buy", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": attempt.key },
      body: payload,
    }, 20);
    $("buy").disabled = false;
    const settled = status !== 0 && status !== 429 && status < 500;
    if (settled) attempt = null;
    if (status !== 200) {
      showErrors(body, status, retryAfter);
      if (!settled && status !== 429) {
        const which = body.purchaseId ? " (purchase " + body.purchaseId + ")" : "";
        say($("message").textContent + which + " Press Buy again to retry: the purchase is stored at most once.", true);
      }
      return;
    }
    say("Sent to Kafka: " + body.purchaseId + " (partition " + body.partition + ", offset " + body.offset + "); waiting until it is stored", false);
    if (listedUser !== purchase.username) {
      listedUser = purchase.username;
      $("listed-user").textContent = "of " + purchase.username;
      rows.clear();
      $("purchases").tBodies[0].replaceChildren();
    }
    const tbody = $("purchases").tBodies[0];
    const tr = row({ purchaseId: body.purchaseId, timestamp: purchase.timestamp || "", price: purchase.price, userid: purchase.userid }, "sent");
    tbody.insertBefore(tr, tbody.firstChild);
    $("timestamp").value = new Date().toISOString();
    follow(purchase.username, body.purchaseId);
  }

  $("use-token").addEventListener("click", useToken);
  $("token").addEventListener("keydown", (event) => { if (event.key === "Enter") useToken(); });
  $("sign-out").addEventListener("click", signOut);
  showSignedIn();
  if (token) {
    const claims = claimsOf(token);
    if (claims && typeof claims.preferred_username === "string") $("username").value = claims.preferred_username;
    if (claims && typeof claims.sub === "string") $("userid").value = claims.sub;
  }
  $("buy-form").addEventListener("submit", buy);
  $("list").addEventListener("click", () => list(false));
  $("more").addEventListener("click", () => list(true));
})();
