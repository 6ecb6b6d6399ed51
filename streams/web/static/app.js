// The live page (docs/page.md): reads the public GET endpoints of the worker that served it
// and polls them. Every value from the API reaches the page as text (textContent), never as
// markup: zone names and report fields come from outside.
"use strict";

(() => {
  const POLL_MS = 3000;
  /** How long a request may take: past it the worker "did not answer" (a worker that stops
   * answering left every later refresh waiting for ever, and the page saying "Live"). */
  const FETCH_TIMEOUT_MS = 10000;
  /** The figures are stale once the last refresh that got every answer is older than this:
   * the status line then says since when they are not updated. */
  const STALE_MS = 2 * POLL_MS;
  /** Incidents listed: 50, or the page's `?limit=` (1 to 1000, what the API pages by). */
  const INCIDENT_LIMIT = (() => {
    const n = Number(new URLSearchParams(location.search).get("limit"));
    return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 50;
  })();
  const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
  /** An incident that answered 404 (withdrawn, or merged into another) is not asked for on
   * every refresh (each 404 was an error in the browser's console every 3 s): a chosen
   * alert's one again only when the alert's incident list changes, the dialog's only when
   * it is opened again, and either at the latest after this long, since an id can head an
   * incident again (a withdrawn report reinstated by a revision, a merge undone:
   * docs/record.md). */
  const GONE_RECHECK_MS = 60000;
  /** Incident details fetched per refresh for their points (the list carries no place). */
  const DETAILS_PER_REFRESH = 8;
  /** Lower bounds of the shading classes; zero has its own colour. */
  const BREAKS = [1, 3, 6, 11, 21, 51];
  const SHADES = ["#f2f2f2", "#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"];
  const SEVERITY_COLOURS = { critical: "#a50f15", high: "#de2d26", medium: "#e6820e", low: "#6b7785" };
  const WINDOW_SECONDS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
  /** Each window as a phrase that follows "incidents": "incidents in the last hour",
   * "incidents since the ceasefire". */
  const WINDOW_TEXT = {
    "1h": "in the last hour", "24h": "in the last 24 hours", "7d": "in the last 7 days",
    "30d": "in the last 30 days", all: "since the ceasefire",
  };
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const OUTSIDE = "outside";
  /** The zone label of an alert of a theatre-wide rule (alerting/theatre.py): no zone. */
  const THEATRE = "theatre";

  const state = {
    window: "24h",
    zone: null, // the zone the incidents are filtered by
    alert: null, // the alert chosen (its zone is then the filter)
    alertsKnown: false, // whether the alerts have answered once
    // incident_id -> {doc} | {gone: {mergedInto, at}} | {error} of the chosen alert's
    // incidents that the list does not hold (fetched by id, however old)
    alertIncidents: new Map(),
    alertIncidentsOf: null, // the alert and its incident ids those answers are for
    features: [],
    names: new Map([[OUTSIDE, "Outside all zones"], [THEATRE, "the whole theatre"]]),
    counts: null, // zone -> tally row of the window shown; null: not known (yet)
    alerts: [],
    incidents: [],
    places: new Map(), // incident_id -> {version, lat, lon}
    generation: 0, // bumps on each filter change: answers to older requests are dropped
    span: null, // {from, to} of the incidents listed; null: the list is not known (yet)
    lastLive: null, // the time (UTC, text) of the last refresh that found the worker ready
    notLiveSince: null, // the last live refresh's time, while the worker is not ready
    lastUpdated: null, // {at: ms, text: "HH:MM:SS"} of the last refresh that got every answer
    startedAt: null, // {at, text} of the first refresh: stale since then until one succeeds
    problem: null, // what failed in the last refresh, until one gets every answer
  };
  const zoneLayers = new Map(); // zone -> Leaflet layer
  let map = null;
  let points = null;

  // -- helpers ---------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(url, status, message, body = null) {
      super(`${url.split("?")[0]}: ${status} ${message}`);
      this.status = status;
      this.body = body; // the JSON answer, when there was one (a 404's `merged_into`)
    }
  }

  /** A request's signal: aborted after FETCH_TIMEOUT_MS, or when `signal` (a refresh's,
   * given up on a filter change) is. */
  function deadline(signal) {
    const timeout = AbortSignal.timeout(FETCH_TIMEOUT_MS);
    return signal && AbortSignal.any ? AbortSignal.any([signal, timeout]) : timeout;
  }

  /** The browser's words for a request that failed ("Failed to fetch", "signal timed out")
   * say nothing to a reader. */
  function unanswered(url, err) {
    const path = url.split("?")[0];
    if (err?.name === "TimeoutError") {
      return new Error(`${path}: the worker did not answer within ${FETCH_TIMEOUT_MS / 1000} s`);
    }
    if (err?.name === "AbortError") return new Error(`${path}: given up (the filter changed)`);
    return new Error(`${path}: the worker did not answer`);
  }

  async function getJSON(url, signal = null) {
    let resp;
    try {
      resp = await fetch(url, {
        headers: { Accept: "application/json" }, cache: "no-store", signal: deadline(signal),
      });
    } catch (err) {
      throw unanswered(url, err);
    }
    if (!resp.ok) {
      let message = resp.statusText;
      let body = null;
      try {
        body = await resp.json();
        message = body?.error || message;
      } catch (_) { /* not JSON */ }
      throw new ApiError(url, resp.status, message, body);
    }
    try {
      return await resp.json();
    } catch (err) { // the body too is bounded by the deadline
      if (err?.name === "TimeoutError" || err?.name === "AbortError") throw unanswered(url, err);
      throw err;
    }
  }

  const words = (code) => String(code ?? "").replaceAll("_", " ");
  const zoneName = (id) => state.names.get(id) ?? id;
  /** A name from outside (a zone's, a place's, one a report gave) isolated from the text
   * around it: a right-to-left name beside figures ("شوشی · 39.7601, 46.7502") no longer
   * reorders them ("46.7502 ,39.7601 · شوشی"). */
  const bdi = (text) => el("bdi", {}, String(text ?? ""));
  /** The incident's, or an alert's, card title: "small arms fire · Shusha". */
  const titled = (code, zone) => [words(code), " · ", bdi(zoneName(zone))];
  function utc(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  /** The theatre's UTC offset in hours (the linking rule's `day_utc_offset_hours`, which the
   * server renders into the page), or null: days are then UTC days. */
  function theatreOffset() {
    const text = meta("ceasefire-day-utc-offset-hours").trim();
    const hours = text === "" ? NaN : Number(text);
    return Number.isFinite(hours) ? hours : null;
  }

  /** A time as precisely as it is known: an exact one to the UTC minute; one known only to
   * the day, week or month as its date in the theatre's local day (UTC when the linking
   * rule has no theatre day), with the precision said: "30 Nov 2026 (day)", "week of
   * 30 Nov 2026", "Nov 2026 (month)". A missing precision is exact (older documents). */
  function when(iso, precision) {
    const p = precision ?? "exact";
    if (p === "exact") return utc(iso);
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const offset = theatreOffset();
    const local = new Date(d.getTime() + (offset ?? 0) * 3600 * 1000);
    const month = `${MONTHS[local.getUTCMonth()]} ${local.getUTCFullYear()}`;
    const day = `${local.getUTCDate()} ${month}`;
    const inUtc = offset === null ? ", UTC" : "";
    if (p === "day") return `${day} (day${inUtc})`;
    if (p === "week") return `week of ${day}${offset === null ? " (UTC)" : ""}`;
    if (p === "month") return `${month} (month${inUtc})`;
    return `${day} (${words(p)}${inUtc})`;
  }

  /** An RFC 3339 time (as the API writes them, up to 6 digits of a second) as microseconds
   * since the epoch, or null. */
  function micros(iso) {
    const m = /^(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$/
      .exec(String(iso ?? ""));
    if (!m) return null;
    const ms = Date.parse(`${m[1].slice(0, 10)}T${m[1].slice(11)}${m[3].toUpperCase()}`);
    if (Number.isNaN(ms)) return null;
    return ms * 1000 + Number((m[2] ?? "").slice(0, 6).padEnd(6, "0"));
  }

  /** Microseconds since the epoch as an RFC 3339 UTC time to the microsecond. */
  function isoMicros(us) {
    const seconds = Math.floor(us / 1e6);
    const fraction = String(us - seconds * 1e6).padStart(6, "0");
    return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${fraction}Z`;
  }

  /** The span of the incident list (`from` inclusive, `to` exclusive) that holds exactly
   * what the tallies answer counted: a rolling window is [as_of - window, as_of), `all` is
   * [the ceasefire start, as_of), the same rule. Null when the answer cannot be read. */
  function spanOf(win, tallies) {
    const end = micros(tallies?.as_of);
    if (end === null) return null;
    let start;
    if (WINDOW_SECONDS[win]) start = end - WINDOW_SECONDS[win] * 1e6;
    else if (win === "all") start = micros(tallies.since || meta("ceasefire-start"));
    else return null;
    if (start === null) return null;
    return { from: isoMicros(Math.min(start, end)), to: isoMicros(end) };
  }
  function shade(count) {
    let i = 0;
    while (i < BREAKS.length && count >= BREAKS[i]) i += 1;
    return SHADES[i];
  }
  /** A zone's incidents in the window shown, or null while they are not known (the window
   * changed and its tallies have not answered yet). */
  const countOf = (zone) => (state.counts ? state.counts.get(zone)?.incidents ?? 0 : null);
  /** "3 incidents in the last 7 days", or that they are not known yet: never 0 for that. */
  function countText(n) {
    if (n === null) return `incidents ${WINDOW_TEXT[state.window]}: not known yet (loading…)`;
    return `${n} incident${n === 1 ? "" : "s"} ${WINDOW_TEXT[state.window]}`;
  }

  // -- the map ---------------------------------------------------------------------------
  function meta(name) {
    return document.querySelector(`meta[name="${name}"]`)?.content ?? "";
  }

  function initMap() {
    map = L.map("map", { zoomSnap: 0.25, scrollWheelZoom: false });
    window.ceasefireMap = map; // for the browser test and the console
    const tiles = meta("ceasefire-map-tiles");
    if (tiles) {
      L.tileLayer(tiles, { attribution: meta("ceasefire-map-tiles-attribution"), maxZoom: 18 })
        .addTo(map);
    }
    // Incidents in a pane of their own, above the zones whatever is drawn later.
    map.createPane("incidents").style.zIndex = "450";
    points = L.layerGroup().addTo(map);
  }

  function zoneStyle(id) {
    const selected = id === state.zone;
    const n = countOf(id);
    return {
      color: selected ? "#0a58ca" : "#555",
      weight: selected ? 3 : 1,
      // not known: no shade (not even zero's), a dashed outline
      fillColor: n === null ? "#ffffff" : shade(n),
      fillOpacity: n === null ? 0.3 : 0.75,
      dashArray: n === null ? "4 4" : null,
    };
  }

  function tooltipFor(id) {
    return el("div", {}, el("strong", {}, zoneName(id)), el("br"), countText(countOf(id)));
  }

  function drawZones() {
    // Drawn so that the zone on top is the one a point there is counted in: lowest priority
    // first (cities over the districts around them), and among equals the first in the
    // catalogue last (it wins ties).
    const ordered = state.features.map((f, i) => [f, i]).sort(
      ([a, i], [b, j]) => (a.properties.priority ?? 0) - (b.properties.priority ?? 0) || j - i)
      .map(([f]) => f);
    const layers = ordered.map((feature) => {
      const id = feature.properties.id;
      const layer = L.geoJSON(feature, { style: () => zoneStyle(id) });
      layer.bindTooltip(() => tooltipFor(id), { sticky: true });
      layer.on("click", () => chooseZone(id));
      zoneLayers.set(id, layer);
      return layer;
    });
    const all = L.latLngBounds([]);
    for (const layer of layers) all.extend(layer.getBounds());
    // The view first: Leaflet draws a layer only once the map has one.
    if (all.isValid()) {
      const region = all.pad(0.03);
      map.fitBounds(region.pad(0.02));
      // A light outline of the region the catalogue covers: no tiles are needed.
      L.rectangle(region, {
        color: "#9aa5b1", weight: 1, dashArray: "4 4", fill: false, interactive: false,
      }).addTo(map);
    } else {
      map.setView([0, 0], 2);
    }
    for (const [id, layer] of zoneLayers) {
      layer.addTo(map);
      layer.eachLayer((path) => {
        const node = path.getElement();
        node.setAttribute("data-zone", id);
        node.classList.add("zone");
        // a zone is a button to the keyboard too: named, and Enter or Space filters by it
        node.setAttribute("tabindex", "0");
        node.setAttribute("role", "button");
        node.addEventListener("keydown", (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); chooseZone(id); }
        });
      });
    }
    restyleZones();
  }

  function restyleZones() {
    for (const [id, layer] of zoneLayers) {
      layer.setStyle(zoneStyle(id));
      const label = `${zoneName(id)}: ${countText(countOf(id))}`;
      layer.eachLayer((path) => {
        const node = path.getElement();
        node?.setAttribute("aria-label", label);
        node?.setAttribute("aria-pressed", String(id === state.zone));
      });
    }
  }

  function drawLegend() {
    const legend = document.getElementById("legend");
    const items = [el("span", {}, el("span", { class: "swatch", style: `background:${SHADES[0]}` }), "0")];
    BREAKS.forEach((low, i) => {
      const high = BREAKS[i + 1];
      const text = high === undefined ? `${low}+` : high - 1 === low ? `${low}` : `${low}–${high - 1}`;
      items.push(el("span", {}, el("span", { class: "swatch", style: `background:${SHADES[i + 1]}` }), text));
    });
    items.push(el("span", {}, "incidents per zone ·"));
    for (const [severity, colour] of Object.entries(SEVERITY_COLOURS)) {
      items.push(el("span", {}, el("span", { class: "dot", style: `background:${colour}` }), severity));
    }
    items.push(el("span", {}, "incident (latest)"));
    legend.replaceChildren(...items);
  }

  function placeOf(details) {
    // The most verified report with a point location, else any report with coordinates.
    const rank = { observed: 0, reported: 1, alleged: 2 };
    const located = (details.reports || []).filter((r) => typeof r.lat === "number" && typeof r.lon === "number");
    located.sort((a, b) => (a.location_precision === "point" ? 0 : 1) - (b.location_precision === "point" ? 0 : 1)
      || (rank[a.verification] ?? 3) - (rank[b.verification] ?? 3));
    return located.length ? { lat: located[0].lat, lon: located[0].lon } : null;
  }

  async function locateIncidents(generation, signal = null) {
    if (state.places.size > 4 * INCIDENT_LIMIT) { // forget places no longer listed
      const listed = new Set(state.incidents.map((i) => i.incident_id));
      for (const id of state.places.keys()) if (!listed.has(id)) state.places.delete(id);
    }
    const missing = state.incidents.filter((i) => state.places.get(i.incident_id)?.version !== i.version)
      .slice(0, DETAILS_PER_REFRESH);
    await Promise.all(missing.map(async (incident) => {
      try {
        const details = await getJSON(
          `/api/v1/incidents/${encodeURIComponent(incident.incident_id)}`, signal);
        const place = placeOf(details);
        state.places.set(incident.incident_id, { version: incident.version, ...(place || { lat: null, lon: null }) });
      } catch (_) { /* merged or withdrawn meanwhile: no point until the next refresh */ }
    }));
    if (generation === state.generation) drawPoints();
  }

  function drawPoints() {
    points.clearLayers();
    // Oldest first, so the newest is drawn on top.
    for (const incident of [...state.incidents].reverse()) {
      const place = state.places.get(incident.incident_id);
      if (!place || place.lat === null) continue;
      const marker = L.circleMarker([place.lat, place.lon], {
        pane: "incidents",
        radius: incident.severity === "critical" ? 8 : 6,
        color: "#222", weight: 1, fillOpacity: 0.9,
        fillColor: SEVERITY_COLOURS[incident.severity] ?? SEVERITY_COLOURS.low,
      });
      marker.bindTooltip(() => el("div", {}, el("strong", {}, words(incident.category)), el("br"),
        bdi(zoneName(incident.zone)), ` · ${when(incident.occurred_at, incident.time_precision)}`));
      marker.on("click", (e) => { L.DomEvent.stopPropagation(e); openIncident(incident.incident_id, null); });
      marker.addTo(points);
      const node = marker.getElement();
      node?.setAttribute("data-incident-id", incident.incident_id);
      // redrawn on every refresh, and the list holds the same incidents as buttons: no Tab
      // stop (one lost its focus each refresh), nothing for a screen reader to say twice
      node?.setAttribute("tabindex", "-1");
      node?.setAttribute("aria-hidden", "true");
    }
  }

  // -- the zone table --------------------------------------------------------------------
  function zoneRow(id) {
    let row = document.querySelector(`#zone-rows tr[data-zone="${CSS.escape(id)}"]`);
    if (row) return row;
    const cells = ["incidents", "reports", "killed", "wounded"].map(
      (field) => el("td", { class: "num", "data-field": field }, "0"));
    row = el("tr", { "data-zone": id },
      el("th", { scope: "row" },
        el("button", { type: "button", "aria-pressed": "false", onclick: () => chooseZone(id) },
          el("span", { class: "swatch", "aria-hidden": "true" }), zoneName(id))),
      cells);
    document.getElementById("zone-rows").append(row);
    return row;
  }

  function renderTable() {
    const known = state.counts !== null;
    document.getElementById("zones-caption").textContent =
      `Incidents by zone ${WINDOW_TEXT[state.window]}, by event time${known ? "" : " (loading…)"}`;
    const ids = state.features.map((f) => f.properties.id);
    // Zones the tallies count that the catalogue no longer has (an id renamed keeps its
    // earlier incidents under the old one: docs/zones.md), by their ids: their incidents
    // are in the list's "of N" too. A row once drawn stays, at 0, like `outside`'s.
    const drawn = new Set([...ids, OUTSIDE]);
    const rowsHeld = [...document.querySelectorAll("#zone-rows tr[data-zone]")].map((r) => r.dataset.zone);
    const counted = known ? [...state.counts.keys()].filter((id) => countOf(id) > 0) : [];
    ids.push(...[...new Set([...rowsHeld, ...counted])].filter((id) => !drawn.has(id)).sort());
    if (countOf(OUTSIDE) > 0 || rowsHeld.includes(OUTSIDE)) ids.push(OUTSIDE);
    for (const id of ids) {
      const row = zoneRow(id);
      const tally = known ? state.counts.get(id) ?? {} : null;
      for (const cell of row.querySelectorAll("td[data-field]")) {
        cell.textContent = tally ? String(tally[cell.dataset.field] ?? 0) : "—"; // — not known
      }
      row.querySelector(".swatch").style.background = known ? shade(countOf(id)) : "transparent";
      row.classList.toggle("selected", id === state.zone);
      row.querySelector("button").setAttribute("aria-pressed", String(id === state.zone));
    }
  }

  // -- alerts and incidents ----------------------------------------------------------------
  /** The element under `root` whose `data-focus-key` is `key` (no selector built from it). */
  function byKey(root, key) {
    return [...root.querySelectorAll("[data-focus-key]")].find((e) => e.dataset.focusKey === key) ?? null;
  }

  /** Replace a list's items, keeping the keyboard focus on the element with the same key
   * (`data-focus-key`: "alert:ID", "incident:ID", "alert-incident:ID"), or on the list when
   * that one is gone. The lists are rebuilt on every refresh: a keyboard user must not
   * lose their place, and a refresh must not scroll (the focus moves with preventScroll)
   * nor take the focus from anywhere else. */
  function replaceItems(list, items) {
    const active = document.activeElement;
    const had = active && active !== list && list.contains(active);
    const key = had ? active.dataset?.focusKey ?? null : null;
    list.replaceChildren(...items);
    if (had) ((key === null ? null : byKey(list, key)) ?? list).focus({ preventScroll: true });
  }

  /** An incident's card: `scope` names the list in its focus key. */
  function incidentItem(i, scope, marked) {
    const casualties = [i.killed ? `${i.killed} killed` : null, i.wounded ? `${i.wounded} wounded` : null]
      .filter(Boolean).join(", ") || "no casualties reported";
    const n = i.reports?.length ?? 0;
    return el("li", { "data-incident-id": i.incident_id, "data-zone": i.zone, class: marked ? "selected" : null },
      el("button", { type: "button", class: `sev-${i.severity}`, "aria-haspopup": "dialog",
        "data-focus-key": `${scope}:${i.incident_id}`,
        onclick: (e) => openIncident(i.incident_id, e.currentTarget) },
      el("div", { class: "title" }, el("span", { class: `badge sev-${i.severity}` }, i.severity),
        titled(i.category, i.zone)),
      el("div", {}, `Attributed to ${i.attribution ?? "unknown"} · ${i.verification ?? "unknown"} · ${casualties}`),
      el("div", { class: "meta" }, `${when(i.occurred_at, i.time_precision)} · ${n} report${n === 1 ? "" : "s"}`)));
  }

  /** The chosen alert's own incidents (its `incident_ids`), under it, each marked: from the
   * list when it holds them, else as fetched by id (`GET /api/v1/incidents/{id}`), however
   * old; one no longer open (withdrawn, or merged into another) is said to be. */
  function alertIncidentList(alert) {
    const ids = [...new Set((Array.isArray(alert.incident_ids) ? alert.incident_ids : []).map(String))];
    const listed = new Map(state.incidents.map((i) => [i.incident_id, i]));
    const docs = [];
    const others = [];
    for (const id of ids) {
      const known = state.alertIncidents.get(id);
      const doc = listed.get(id) ?? known?.doc;
      if (doc) { docs.push(doc); continue; }
      if (known?.gone) {
        const merged = known.gone.mergedInto;
        others.push(el("li", { "data-incident-id": id, class: "gone" },
          el("p", {}, `Incident ${id} is no longer open: `, merged
            ? `it was merged into incident ${merged}.` : "it was withdrawn or merged into another incident."),
          merged ? el("button", { type: "button", "aria-haspopup": "dialog", "data-focus-key": `alert-merged:${id}`,
            onclick: (e) => openIncident(merged, e.currentTarget) }, `Open incident ${merged}`) : null));
      } else {
        others.push(el("li", { "data-incident-id": id, class: "pending" },
          el("p", {}, known?.error ? `Incident ${id}: not known right now (retrying): ${known.error}`
            : `Incident ${id}: loading…`)));
      }
    }
    docs.sort((a, b) => (micros(b.occurred_at) ?? 0) - (micros(a.occurred_at) ?? 0));
    const n = ids.length;
    return el("div", { class: "alert-incidents" },
      el("p", { class: "meta" }, n ? `Its ${n} incident${n === 1 ? "" : "s"}:` : "It names no incident."),
      n ? el("ul", { class: "cards", "aria-label": "The alert's incidents" },
        docs.map((i) => incidentItem(i, "alert-incident", true)), others) : null);
  }

  function renderAlerts() {
    const list = document.getElementById("alerts");
    if (!state.alerts.length) {
      replaceItems(list, [el("li", { class: "empty" }, "No alert is firing.")]);
      return;
    }
    replaceItems(list, state.alerts.map((a) => {
      const zone = a.labels?.zone;
      const chosen = a.alert_id === state.alert;
      return el("li", { "data-alert-id": a.alert_id, "data-severity": a.severity, "data-zone": zone,
        class: chosen ? "selected" : null },
      el("button", { type: "button", class: `sev-${a.severity}`, "aria-pressed": String(chosen),
        "aria-expanded": String(chosen), "data-focus-key": `alert:${a.alert_id}`,
        onclick: () => chooseAlert(a) },
      el("div", { class: "title" }, el("span", { class: `badge sev-${a.severity}` }, a.severity),
        titled(a.rule, zone)),
      el("div", {}, a.summary),
      el("div", { class: "meta" }, `since ${utc(a.starts_at)} · ${a.value} (threshold ${a.threshold}) in ${a.window}`)),
      chosen ? alertIncidentList(a) : null);
    }));
  }

  function renderIncidents() {
    const list = document.getElementById("incidents");
    const where = state.zone ? ` in ${zoneName(state.zone)}` : "";
    document.getElementById("incidents-title").replaceChildren("Latest incidents",
      ...(state.zone ? [" in ", bdi(zoneName(state.zone))] : []), ` ${WINDOW_TEXT[state.window]}`);
    const alertIds = new Set(state.alerts.find((a) => a.alert_id === state.alert)?.incident_ids ?? []);
    renderListNote();
    if (state.span === null) { // the list of this filter has not answered yet: not "none"
      replaceItems(list, [el("li", { class: "empty" }, "Loading…")]);
      return;
    }
    if (!state.incidents.length) {
      replaceItems(list, [el("li", { class: "empty" }, "No incident", ...(where ? [" in ", bdi(zoneName(state.zone))] : []),
        ` ${WINDOW_TEXT[state.window]}.`)]);
      return;
    }
    replaceItems(list, state.incidents.map((i) => incidentItem(i, "incident", alertIds.has(i.incident_id))));
  }

  /** How many of the span's incidents the list shows, and where the rest are: the tallies
   * count them all (the zone's row when filtered), the list stops at INCIDENT_LIMIT. */
  function renderListNote() {
    const note = document.getElementById("incidents-note");
    const span = state.span;
    if (!span || !state.counts) { // the list or the counts are not known (yet)
      note.replaceChildren("");
      return;
    }
    const total = state.zone ? (state.counts.get(state.zone)?.incidents ?? 0)
      : [...state.counts.values()].reduce((sum, row) => sum + (row.incidents ?? 0), 0);
    const shown = state.incidents.length;
    if (shown >= total) {
      note.replaceChildren(shown ? `All ${shown} shown.` : "");
      return;
    }
    const params = new URLSearchParams({ format: "csv", limit: "1000", from: span.from, to: span.to });
    if (state.zone) params.set("zone", state.zone);
    note.replaceChildren(`The latest ${shown} of ${total} shown · `,
      el("a", { href: `/api/v1/incidents?${params}`, download: "incidents.csv" },
        total > 1000 ? "the first 1,000 as CSV (the API pages on)" : `all ${total} as CSV`));
  }

  function renderFilter() {
    const box = document.getElementById("filter");
    const alert = state.alerts.find((a) => a.alert_id === state.alert);
    // an alert chosen (or restored from the address) that is not firing (any more)
    const gone = state.alert !== null && !alert && state.alertsKnown ? " (alert no longer firing)" : "";
    box.hidden = !state.zone && !alert && !gone;
    document.getElementById("filter-text").replaceChildren(...(state.zone
      ? ["Zone: ", bdi(zoneName(state.zone)), alert ? ` (alert ${words(alert.rule)})` : gone]
      : alert ? [`Alert ${words(alert.rule)}: `, bdi(zoneName(alert.labels?.zone ?? THEATRE))]
        : gone ? ["Alert no longer firing"] : []));
  }

  function render() {
    restyleZones();
    renderTable();
    renderAlerts();
    renderIncidents();
    renderFilter();
    drawPoints();
  }

  function chooseZone(id) {
    state.alert = null;
    state.zone = state.zone === id ? null : id;
    filterChanged();
  }

  /** Another window: its counts are not known until its tallies answer (shown meanwhile
   * as not known, never as the old window's figures nor as 0). */
  function chooseWindow(win) {
    state.window = win;
    state.counts = null;
    const table = document.getElementById("zone-rows");
    table.dataset.asOf = "";
    table.dataset.since = "";
    filterChanged();
  }

  function chooseAlert(alert) {
    const again = state.alert === alert.alert_id;
    state.alert = again ? null : alert.alert_id;
    // A theatre-wide alert is of no one zone: all zones' incidents, its own marked (as a
    // zone filter "theatre", the incidents API refused every refresh with a 400).
    const zone = alert.labels?.zone ?? null;
    state.zone = again || zone === THEATRE || !state.names.has(zone) ? null : zone;
    filterChanged();
  }

  /** The incidents of the old filter are forgotten: the list is not known until the new
   * one answers (the zone counts are the window's, whatever the zone). */
  function filterChanged() {
    state.generation += 1;
    state.incidents = [];
    state.span = null;
    state.alertIncidents = new Map();
    state.alertIncidentsOf = null;
    saveView();
    const list = document.getElementById("incidents");
    list.dataset.from = "";
    list.dataset.to = "";
    render();
    refreshNow();
  }

  // -- one incident ------------------------------------------------------------------------
  /** The incident dialog's requests, numbered: an answer older than the one shown is
   * dropped (the refresh asks again while the first answer may still be on its way). */
  const dialogLoads = { asked: 0, shown: 0, doc: null, goneAt: 0 };

  /** Open the dialog on incident `id`; `opener` (a button, or null from the map or the
   * address) gets the focus back on close, or the element standing for it by then. */
  function openIncident(id, opener) {
    const dialog = document.getElementById("incident-dialog");
    document.getElementById("incident-title").textContent = "Incident"; // not the last one's
    document.getElementById("incident-body").replaceChildren(el("p", {}, "Loading…"));
    document.getElementById("incident-note").textContent = "";
    dialogLoads.doc = null;
    dialog.dataset.incidentId = id;
    delete dialog.dataset.gone;
    dialog.opener = opener;
    dialog.dataset.openerKey = opener?.dataset?.focusKey ?? "";
    dialog.dataset.openerList = opener?.closest?.("#alerts, #incidents")?.id ?? "";
    if (!dialog.open) dialog.showModal();
    saveView();
    return loadIncident(id);
  }

  /** Ask for the incident open in the dialog and show its answer: on opening, and again on
   * every refresh, so its figures, attribution, version and reports stay current. A 404
   * (withdrawn, or merged into another) says that it is no longer open; another failure
   * keeps what is shown, saying it is not updated. */
  async function loadIncident(id, signal = null) {
    const dialog = document.getElementById("incident-dialog");
    const note = document.getElementById("incident-note");
    const seq = ++dialogLoads.asked;
    // An answer arriving after the dialog closed, or moved on to another incident, or
    // after a newer answer, is not this dialog's any more.
    const wanted = () => dialog.open && dialog.dataset.incidentId === id && seq > dialogLoads.shown;
    let doc;
    try {
      doc = await getJSON(`/api/v1/incidents/${encodeURIComponent(id)}`, signal);
    } catch (err) {
      if (!wanted() || signal?.aborted) return;
      dialogLoads.shown = seq;
      if (err.status === 404) {
        dialogLoads.goneAt = Date.now();
        showGone(id, err.body);
      } else if (dialogLoads.doc !== null) {
        note.textContent = `Not updated at ${clock()} UTC (retrying): ${err.message}`;
        note.classList.add("error");
      } else if (dialog.dataset.gone === undefined) {
        document.getElementById("incident-body").replaceChildren(
          el("p", { class: "status error" }, err.message));
      }
      return;
    }
    if (!wanted()) return;
    dialogLoads.shown = seq;
    note.textContent = "";
    note.classList.remove("error");
    const text = JSON.stringify(doc);
    if (text === dialogLoads.doc) return; // unchanged: nothing redrawn, nothing moves
    dialogLoads.doc = text;
    delete dialog.dataset.gone;
    showIncident(doc);
  }

  /** The incident is no longer open: said in place of its last figures, with a way to the
   * incident it was merged into when the API names one. */
  function showGone(id, answer) {
    const dialog = document.getElementById("incident-dialog");
    if (dialog.dataset.gone === id) return; // said already: nothing redrawn
    dialog.dataset.gone = id;
    dialogLoads.doc = null;
    const merged = typeof answer?.merged_into === "string" ? answer.merged_into : null;
    document.getElementById("incident-title").textContent = "Incident no longer open";
    document.getElementById("incident-body").replaceChildren(
      el("p", { class: "gone" }, `Incident ${id} is no longer open: `, merged
        ? `it was merged into incident ${merged}, which holds its reports now.`
        : "it was withdrawn, or merged into another incident."),
      ...(merged ? [el("button", { type: "button", onclick: () => openIncident(merged, dialog.opener) },
        `Open incident ${merged}`)] : [])); // (replaceChildren writes a null as "null")
  }

  /** Draw the incident's answer, keeping where the reader had scrolled in the dialog. */
  function showIncident(doc) {
    const dialog = document.getElementById("incident-dialog");
    const body = document.getElementById("incident-body");
    const scrolled = [dialog.scrollTop, body.querySelector(".reports")?.scrollLeft ?? 0];
    document.getElementById("incident-title").replaceChildren(...titled(doc.category, doc.zone));
    const claims = Object.entries(doc.claims || {}).map(([c, a]) => `${c} accuses ${a}`).join("; ") || "none";
    const facts = [
      ["Occurred", when(doc.occurred_at, doc.time_precision)], ["Zone", bdi(zoneName(doc.zone))],
      ["Severity", doc.severity],
      ["Attribution", doc.attribution],
      ...(typeof doc.perpetrator_raw === "string" && doc.perpetrator_raw.trim()
        ? [["Perpetrators named (no party)", bdi(doc.perpetrator_raw)]] : []),
      ["Claims", claims], ["Verification", doc.verification],
      ["Killed", doc.killed], ["Wounded", doc.wounded], ["Incident", `${doc.incident_id} (version ${doc.version})`],
    ];
    const columns = ["source", "report_id", "revision", "source_type", "occurred_at", "category",
      "perpetrator", "target", "claimant", "killed", "wounded", "verification", "place"];
    const rows = (doc.reports || []).map((r) => el("tr", { "data-report-id": r.report_id },
      columns.map((c) => el("td", { "data-field": c }, reportCell(r, c)))));
    body.replaceChildren(
      el("dl", { class: "facts" }, facts.map(([k, v]) =>
        [el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v ?? "—"))])),
      el("h3", {}, `Reports (${rows.length})`),
      el("div", { class: "reports" }, el("table", {},
        el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, words(c))))),
        el("tbody", {}, rows))));
    dialog.scrollTop = scrolled[0];
    const reports = body.querySelector(".reports");
    if (reports) reports.scrollLeft = scrolled[1];
  }

  /** On each refresh: the incident open in the dialog, asked again; one said to be no
   * longer open only once GONE_RECHECK_MS have passed since it last answered 404. */
  async function refreshDialog(signal) {
    const dialog = document.getElementById("incident-dialog");
    const id = dialog.dataset.incidentId;
    if (!dialog.open || !id) return;
    if (dialog.dataset.gone === id && Date.now() - dialogLoads.goneAt < GONE_RECHECK_MS) return;
    await loadIncident(id, signal);
  }

  /** A party as the report gave it: its code, and the name it used when that matched no
   * party ("unknown (named: Wagner mercenaries)"). Either may be absent or null. */
  function party(code, raw) {
    const named = typeof raw === "string" && raw.trim() ? raw : null;
    const text = code === null || code === undefined || code === "" ? "" : String(code);
    if (!named) return text;
    return text ? [`${text} (named: `, bdi(named), ")"] : ["named: ", bdi(named)];
  }

  /** Where a report put the event: the gazetteer place it named, beside its coordinates
   * and their precision, each isolated (a right-to-left name swapped the coordinates). */
  function placeText(r) {
    const p = r.place;
    const name = typeof p === "string" && p ? p : typeof p?.name === "string" && p.name ? p.name : null;
    const point = typeof r.lat === "number" && typeof r.lon === "number"
      ? `${r.lat.toFixed(4)}, ${r.lon.toFixed(4)}${r.location_precision ? ` (${r.location_precision})` : ""}`
      : "";
    const parts = [name, point].filter(Boolean).map(bdi);
    return parts.flatMap((part, i) => (i ? [" · ", part] : [part]));
  }

  function reportCell(r, column) {
    switch (column) {
      case "occurred_at": return r.occurred_at ? when(r.occurred_at, r.time_precision) : "";
      case "perpetrator": return party(r.perpetrator, r.perpetrator_raw);
      case "target": return party(r.target, r.target_raw);
      case "claimant": return party(r.claimant, r.claimant_raw);
      case "place": return placeText(r);
      default: return r[column] ?? "";
    }
  }

  function initDialog() {
    const dialog = document.getElementById("incident-dialog");
    document.getElementById("incident-close").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      saveView();
      // The focus goes back where the dialog was opened from: that button, or when a refresh
      // has rebuilt its list meanwhile, the one standing for the same incident now (in the
      // same list first), else the list itself. Opened from the map or the address: the
      // browser's own choice.
      const opener = dialog.opener;
      const key = dialog.dataset.openerKey ?? "";
      const id = dialog.dataset.incidentId;
      dialog.opener = null;
      if (!opener && !key) return;
      const place = document.getElementById(dialog.dataset.openerList || "incidents");
      const target = opener?.isConnected ? opener
        : (key ? byKey(document, key) : null)
          ?? byKey(document, `incident:${id}`) ?? byKey(document, `alert-incident:${id}`) ?? place;
      target?.focus();
    });
  }

  // -- polling -----------------------------------------------------------------------------
  let timer = null;
  /** The AbortController of the refresh under way, or null between refreshes. */
  let current = null;

  const clock = () => new Date().toISOString().slice(11, 19);

  async function refresh(signal) {
    const generation = state.generation;
    const win = state.window;
    const [tallies, alerts, readiness] = await Promise.allSettled([
      getJSON(`/api/v1/tallies?window=${encodeURIComponent(win)}&by=zone`, signal),
      getJSON("/api/v1/alerts?status=firing", signal),
      readyz(signal),
    ]);
    // The list and the map cover the span the tallies counted (their `as_of`, and for
    // `all` their `since`), so the three agree; without tallies the list keeps its last
    // (of this filter: a filter change forgets it).
    const span = tallies.status === "fulfilled" ? spanOf(win, tallies.value) : null;
    let incidents = null;
    if (span) {
      const params = new URLSearchParams({ limit: String(INCIDENT_LIMIT) });
      if (state.zone) params.set("zone", state.zone);
      params.set("from", span.from);
      params.set("to", span.to);
      [incidents] = await Promise.allSettled([getJSON(`/api/v1/incidents?${params}`, signal)]);
    } else if (tallies.status === "fulfilled") {
      incidents = { status: "rejected", reason: new Error(`tallies: no span in the answer for ${win}`) };
    }
    // The chosen alert's own incidents that the list does not hold, each by its id.
    const firing = alerts.status === "fulfilled" ? alerts.value.alerts : state.alerts;
    const listed = incidents?.status === "fulfilled" ? incidents.value.incidents : state.incidents;
    const own = await alertIncidents(firing.find((a) => a.alert_id === state.alert), listed, signal);
    if (generation !== state.generation || win !== state.window) return; // the filter moved on
    const results = [tallies, alerts, incidents, ...own.failed].filter(Boolean);
    if (tallies.status === "fulfilled") {
      state.counts = new Map(tallies.value.rows.map((r) => [r.zone, r]));
      const table = document.getElementById("zone-rows");
      table.dataset.asOf = tallies.value.as_of ?? "";
      table.dataset.since = tallies.value.since ?? "";
    }
    state.alertIncidents = own.found;
    state.alertIncidentsOf = own.of;
    if (alerts.status === "fulfilled") { // the most severe first, then the newest
      state.alertsKnown = true;
      state.alerts = [...alerts.value.alerts].sort(
        (a, b) => (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9)
          || String(b.starts_at).localeCompare(String(a.starts_at)));
    }
    if (incidents?.status === "fulfilled") {
      state.incidents = incidents.value.incidents;
      state.span = span;
      const list = document.getElementById("incidents");
      list.dataset.from = span.from;
      list.dataset.to = span.to;
    }
    render();
    const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
    const now = clock();
    const waiting = readiness.status === "fulfilled" ? readiness.value : [];
    if (!failed.length) {
      state.lastUpdated = { at: Date.now(), text: now };
      state.problem = null;
    } else {
      state.problem = failed.join("; ");
    }
    if (!failed.length && !waiting.length) {
      state.lastLive = now;
      state.notLiveSince = null;
    } else {
      state.notLiveSince ??= state.lastLive ?? now;
    }
    if (failed.length) {
      if (stale()) showStale();
      else {
        showStatus(`Not all figures could be refreshed at ${now} UTC (retrying): ${state.problem}`,
          "Not all figures could be refreshed.");
      }
    } else if (waiting.length) {
      // the figures answer from memory while the worker waits (a broker that does not
      // answer: no report can arrive): not live, whatever the clock says
      // spoken without the counts in brackets ("broker (no answer for 5 probes)"): they
      // rise at every probe, and the line was spoken again every 3 seconds
      const spoken = waiting.map((what) => what.replace(/\s*\([^()]*\d[^()]*\)/g, ""));
      showStatus(`Not live since ${state.notLiveSince} UTC: the worker is waiting for `
        + `${waiting.join("; ")}. The figures are those it holds; checked at ${now} UTC.`,
      `Not live: the worker is waiting for ${spoken.join("; ")}.`);
    } else {
      const firing = state.alerts.length;
      showStatus(`Updated ${now} UTC · ${firing} alert${firing === 1 ? "" : "s"} firing`,
        `Live · ${firing} alert${firing === 1 ? "" : "s"} firing`, false);
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    }
    await Promise.all([locateIncidents(generation, signal), refreshDialog(signal)]);
  }

  /** The incidents of `alert` (the one chosen, or none) that `listed` does not hold, asked
   * for by id: {found: id -> {doc} | {gone: {mergedInto, at}} | {error}, failed:
   * [rejected], of: the alert and its incident ids}. One that failed keeps what was known
   * of it. One no longer open (404) is not asked for again while the alert names the same
   * incidents, for GONE_RECHECK_MS: it was asked for on every refresh. */
  async function alertIncidents(alert, listed, signal) {
    const found = new Map();
    const failed = [];
    if (!alert || !Array.isArray(alert.incident_ids)) return { found, failed, of: null };
    const all = [...new Set(alert.incident_ids.map(String))];
    const of = JSON.stringify([String(alert.alert_id), all]);
    const same = of === state.alertIncidentsOf; // else what is known of them is forgotten
    const have = new Set(listed.map((i) => i.incident_id));
    const ids = all.filter((id) => !have.has(id));
    await Promise.all(ids.map(async (id) => {
      const last = same ? state.alertIncidents.get(id) : undefined;
      if (last?.gone && Date.now() - last.gone.at < GONE_RECHECK_MS) {
        found.set(id, last); // gone, and the alert still names the same incidents
        return;
      }
      try {
        found.set(id, { doc: await getJSON(`/api/v1/incidents/${encodeURIComponent(id)}`, signal) });
      } catch (err) {
        if (err.status === 404) {
          const merged = err.body?.merged_into;
          found.set(id, { gone: { mergedInto: typeof merged === "string" ? merged : null, at: Date.now() } });
          return;
        }
        failed.push({ status: "rejected", reason: err });
        const last = state.alertIncidents.get(id);
        found.set(id, last?.doc || last?.gone ? last : { error: err.message });
      }
    }));
    return { found, failed, of };
  }

  /** What the worker waits for before it is ready ([] when it is): `/readyz`'s answer. */
  async function readyz(signal) {
    let resp;
    try {
      resp = await fetch("/readyz", {
        headers: { Accept: "application/json" }, cache: "no-store", signal: deadline(signal),
      });
    } catch (_) {
      return []; // the other requests say that the worker did not answer
    }
    if (resp.ok) return [];
    try {
      const body = await resp.json();
      return Array.isArray(body.waiting_for) && body.waiting_for.length
        ? body.waiting_for.map(String) : [String(body.status ?? resp.status)];
    } catch (_) {
      return [`readiness (${resp.status})`];
    }
  }

  /** The visible status line, rewritten every refresh, and its spoken form (`said`): a live
   * region changed only when what it says changes, not every 3 s with the clock. */
  function showStatus(text, said, error = true) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.classList.toggle("error", error);
    const live = document.getElementById("status-live");
    if (live.textContent !== said) live.textContent = said;
  }

  /** Whether the last refresh that got every answer (or, before any did, the first
   * refresh's start) is older than STALE_MS. */
  function stale() {
    const last = state.lastUpdated ?? state.startedAt;
    return last !== null && Date.now() - last.at > STALE_MS;
  }

  /** The figures on the page are not current: since when, and why (what failed last, or a
   * refresh still waiting for its answers). */
  function showStale() {
    const since = state.lastUpdated
      ? `${state.lastUpdated.text} UTC` : `the page loaded (${state.startedAt.text} UTC)`;
    const why = state.problem ? `${state.problem} (retrying)` : "waiting for the worker to answer";
    showStatus(`Not updated since ${since}: ${why}`, `Not updated since ${since}.`);
  }

  /** Once a second: a refresh that waits for answers leaves the status line as it was, so
   * this says when the figures grow stale (a worker that stops answering). */
  function watchStaleness() {
    if (stale()) showStale();
  }

  /** Refresh now, then every POLL_MS after each refresh ends. A refresh under way (its
   * answers for the old filter when the filter changed) is given up: its requests are
   * aborted, so that none waits on a worker that does not answer. */
  async function refreshNow() {
    clearTimeout(timer);
    timer = null;
    current?.abort();
    const mine = new AbortController();
    current = mine;
    if (state.startedAt === null) {
      state.startedAt = { at: Date.now(), text: clock() };
      setInterval(watchStaleness, 1000);
    }
    try {
      await refresh(mine.signal);
    } catch (err) {
      if (current === mine) {
        state.problem = `the refresh failed: ${err.message}`;
        if (stale()) showStale();
        else showStatus(`Refresh failed (retrying): ${err.message}`, "The refresh failed.");
      }
    } finally {
      if (current === mine) {
        current = null;
        timer = setTimeout(refreshNow, POLL_MS);
      }
    }
  }

  /** The view (window, zone, alert, the incident open) is kept in the page's address, beside
   * `limit`: `?window=7d&zone=shusha&incident=…`. A reload shows it again, and it can be
   * shared. Written with history.replaceState (no entry in the history per click). */
  function saveView() {
    const query = new URLSearchParams(location.search);
    const put = (key, value) => (value ? query.set(key, value) : query.delete(key));
    put("window", state.window === "24h" ? null : state.window);
    put("zone", state.zone);
    put("alert", state.alert);
    const dialog = document.getElementById("incident-dialog");
    put("incident", dialog.open ? dialog.dataset.incidentId : null);
    const search = query.toString() ? `?${query}` : "";
    if (search !== location.search) {
      history.replaceState(history.state, "", `${location.pathname}${search}${location.hash}`);
    }
  }

  function offerWindows(select) {
    // The windows this worker's tallies answer (the server lists them), 24 hours first chosen.
    const windows = meta("ceasefire-windows").split(" ").filter((w) => w in WINDOW_TEXT);
    for (const w of windows.length ? windows : ["24h"]) {
      select.append(el("option", { value: w, selected: w === "24h" }, WINDOW_TEXT[w]));
    }
  }

  async function start() {
    initMap();
    initDialog();
    drawLegend();
    const select = document.getElementById("window");
    offerWindows(select);
    const view = new URLSearchParams(location.search); // the view kept in the address
    const asked = view.get("window");
    if ([...select.options].some((o) => o.value === asked)) select.value = asked;
    state.window = select.value;
    select.addEventListener("change", () => chooseWindow(select.value));
    document.getElementById("filter-clear").addEventListener("click", () => {
      state.zone = null;
      state.alert = null;
      filterChanged();
    });
    for (;;) {
      try {
        const zones = await getJSON("/api/v1/zones");
        state.features = zones.features;
        break;
      } catch (err) {
        showStatus(`Waiting for the zone catalogue (retrying): ${err.message}`,
          "Waiting for the zone catalogue.");
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
    for (const f of state.features) state.names.set(f.properties.id, f.properties.name ?? f.properties.id);
    const zone = view.get("zone");
    if (zone && zone !== THEATRE && state.names.has(zone)) state.zone = zone;
    state.alert = view.get("alert") || null;
    drawZones();
    saveView(); // what the address asked for and is not (any more) dropped from it
    const incident = view.get("incident");
    if (incident) openIncident(incident, null);
    refreshNow();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
