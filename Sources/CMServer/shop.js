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

  $("timestamp").value = new Date().toISOString();

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
      const response = await fetch(new URL(path, base), { ...options, signal: controller.signal });
      let body = {};
      try { body = await response.json(); } catch (_) { body = {}; }
      return { status: response.status, body };
    } catch (error) {
      return { status: 0, body: { message: error.name === "AbortError" ? "cm-server did not answer in time; try again" : "cm-server cannot be reached; try again" } };
    } finally {
      clearTimeout(timer);
    }
  }

  function showErrors(body) {
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
    say(body.message || "The request failed", true);
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
    const { status, body } = await call(listPath(listedUser, more ? cursor : null), {}, 10);
    $("list").disabled = false;
    if (status !== 200) return showErrors(body);
    const tbody = $("purchases").tBodies[0];
    for (const item of body.purchases || []) tbody.appendChild(row(item, "stored"));
    cursor = body.nextCursor || null;
    $("more").hidden = !cursor;
    say((body.purchases || []).length === 0 && !more ? "No purchases for " + listedUser : "", false);
  }

  // Follows a purchase until cm-api lists it: "sent to Kafka" turns into "stored".
  async function follow(username, purchaseId) {
    for (let attempt = 0; attempt < 60; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { status, body } = await call(listPath(username, null), {}, 5);
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
    $("buy").disabled = true;
    say("Sending…", false);
    const { status, body } = await call("buy", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(purchase),
    }, 20);
    $("buy").disabled = false;
    if (status !== 200) return showErrors(body);
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

  $("buy-form").addEventListener("submit", buy);
  $("list").addEventListener("click", () => list(false));
  $("more").addEventListener("click", () => list(true));
})();
