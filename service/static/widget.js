/* wattwise chat widget: one script, no build step, no dependencies.
 *
 * Embed it with one tag; it loads widget.css from the same place:
 *
 *   <script src="https://wattwise.example/widget.js" defer
 *           data-household="HOUSEHOLD-ID" data-token-provider="getWattwiseToken"
 *           data-target="#energy-chat"></script>
 *
 * `data-token-provider` names a global function that returns (or resolves to) a bearer
 * token; it is called before every request, so it may refresh the token. Or mount it
 * yourself: Wattwise.mount(element, {url, household, getToken}).
 *
 * The answer streams from POST /v1/households/{id}/chat (the AI SDK UI message stream):
 * text as it arrives, the window and "as of" time from data-context, the server's
 * verification from data-verification, proposals from data-action (Confirm and Cancel
 * call the action endpoints with an Idempotency-Key), and, for an answer about a window,
 * a sparkline of /energy/series and bars of /top-devices drawn as plain SVG and HTML.
 * The header shows the household's power now, from GET /live/stream (Server-Sent Events,
 * read with fetch so the token travels in a header); it reconnects after the stream ends
 * and rests while the page is hidden. `data-live="off"` (or {live: false}) leaves it out.
 * Every text the server or the model wrote goes into the page as text, never as markup.
 */
(() => {
  "use strict";

  const SCRIPT = document.currentScript;
  const MAX_HISTORY = 20; // the chat endpoint takes at most 20 messages
  const POLL_MS = [1000, 1000, 2000, 2000, 3000, 5000]; // then every 5 s
  const POLL_FOR_MS = 10 * 60 * 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const ENDED = new Set(["acknowledged", "failed", "cancelled", "expired"]);
  const LIVE_RETRY_MS = [1000, 2000, 5000, 10000, 30000]; // then every 30 s
  /* Live figures whose newest reading is older than this are shown as of that reading,
     not as "now": a gateway sends every few seconds to a minute. */
  const LIVE_STALE_MS = 2 * 60 * 1000;
  /* Times as the answers write them: 24-hour, whatever the browser's locale prefers. */
  const CLOCK = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  let mounted = 0;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  function randomKey() {
    // crypto.randomUUID needs a secure context; getRandomValues does not.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function power(watts) {
    return Math.abs(watts) < 1000 ? `${Math.round(watts)} W` : `${(watts / 1000).toFixed(2)} kW`;
  }

  /* The events of a Server-Sent Events body, as {event, data}, as they arrive. */
  async function* events(stream) {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
        }
        if (data.length) yield { event, data: data.join("\n") };
      }
    }
  }

  function kwh(value) {
    return `${value.toFixed(2)} kWh`; // as the narrator rounds
  }

  function timeIn(zone, iso, withDate) {
    const options = { timeZone: zone, ...CLOCK };
    if (withDate) Object.assign(options, { day: "numeric", month: "short" });
    return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
  }

  function dayIn(zone, iso) {
    const options = { timeZone: zone, weekday: "short", day: "numeric", month: "short" };
    return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
  }

  function sameLocalDay(zone, a, b) {
    const day = new Intl.DateTimeFormat("en-CA", { timeZone: zone, dateStyle: "short" });
    return day.format(new Date(a)) === day.format(new Date(b));
  }

  const WINDOW_NAMES = {
    day: "Today",
    today: "Today",
    yesterday: "Yesterday",
    this_week: "This week",
    week: "The 7 days before today",
    this_month: "This month",
    month: "This month",
    last_month: "Last month",
  };

  function windowLabel(window) {
    const zone = window.timezone;
    const named = WINDOW_NAMES[window.name];
    const oneDay = sameLocalDay(zone, window.start, new Date(Date.parse(window.end) - 1));
    const span = oneDay
      ? `${timeIn(zone, window.start, true)}–${timeIn(zone, window.end, false)}`
      : `${timeIn(zone, window.start, true)} – ${timeIn(zone, window.end, true)}`;
    return named ? `${named}, ${span}` : span;
  }

  function change(action) {
    const device = action.device_name;
    if (action.op === "SET_POWER") return `Switch ${device} ${action.value.toLowerCase()}`;
    if (action.op === "SET_CHARGE_CURRENT") return `Set ${device} to charge at ${action.value} A`;
    if (action.op === "SET_BATTERY_RESERVE") return `Keep ${action.value}% of ${device} in reserve`;
    return `${action.op} ${device} ${action.value}`;
  }

  /* Why a request failed, in words a homeowner can act on. */
  function explain(status, body, headers) {
    const error = (body && body.error) || {};
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (status === 402) {
      const at = error.resets_at ? new Date(error.resets_at) : null;
      const when = at
        ? new Intl.DateTimeFormat(undefined, {
            timeZone: zone,
            weekday: "short",
            day: "numeric",
            month: "short",
            ...CLOCK,
          }).format(at)
        : "soon";
      if (error.limit === "spend_cap") {
        return `The assistant has used its budget for this month and is paused for everyone until ${when}. Your energy data is still recorded.`;
      }
      const period = error.limit === "monthly" ? "this month's" : "today's";
      return `You have used ${period} assistant allowance. It resets on ${when}.`;
    }
    if (status === 429) {
      return `You are asking faster than the assistant can answer. Try again in ${retryAfter(headers, body)} s.`;
    }
    if (status === 503) {
      const seconds = Number(headers.get("retry-after"));
      const wait = seconds ? `in ${seconds} s` : "in a minute";
      return `The assistant is unavailable for a moment (${error.code || "unavailable"}). Please try again ${wait}.`;
    }
    if (status === 401) return "Your session has ended. Sign in again to keep chatting.";
    if (status === 404) return "This household is not available to your account.";
    return error.message || `The request failed (HTTP ${status}).`;
  }

  function retryAfter(headers, body) {
    const error = (body && body.error) || {};
    return Number(headers.get("retry-after")) || error.retry_after || 5;
  }

  class RequestFailed extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  class Widget {
    constructor(root, options) {
      if (!options || !options.household) throw new Error("wattwise: household is required");
      if (typeof options.getToken !== "function") {
        throw new Error("wattwise: getToken must be a function returning a token");
      }
      this.url = (options.url || new URL(".", SCRIPT ? SCRIPT.src : location.href).href).replace(
        /\/+$/,
        "",
      );
      this.household = options.household;
      this.getToken = options.getToken;
      this.history = [];
      this.controller = null;
      this.cards = new Map();
      this.number = ++mounted;
      this.build(root, options.title || "Energy assistant");
      if (options.live !== false) {
        this.live = new Live(this, this.liveLine);
        this.live.start();
      }
    }

    build(root, title) {
      const id = `wattwise-${this.number}`;
      this.root = el("section", "ww");
      this.root.setAttribute("aria-labelledby", `${id}-title`);
      const head = el("header", "ww-head");
      const heading = el("h2", "ww-title", title);
      heading.id = `${id}-title`;
      this.liveLine = el("p", "ww-live");
      this.liveLine.hidden = true;
      head.append(heading, this.liveLine);
      this.log = el("div", "ww-log");
      this.log.setAttribute("role", "log");
      this.log.setAttribute("aria-live", "polite");
      this.log.setAttribute("aria-label", "Conversation");
      this.log.tabIndex = 0; // scrollable by keyboard
      this.notice = el("p", "ww-notice");
      this.notice.setAttribute("role", "alert");
      this.notice.hidden = true;
      this.form = el("form", "ww-form");
      const label = el("label", "ww-sr", "Ask about your energy use");
      label.htmlFor = `${id}-input`;
      this.input = el("input", "ww-input");
      Object.assign(this.input, {
        id: `${id}-input`,
        type: "text",
        autocomplete: "off",
        maxLength: 2000,
        placeholder: "Ask about your energy use…",
      });
      this.send = el("button", "ww-send", "Send");
      this.send.type = "submit";
      this.stop = el("button", "ww-stop", "Stop");
      this.stop.type = "button";
      this.stop.hidden = true;
      this.stop.setAttribute("aria-label", "Stop the answer");
      this.form.append(label, this.input, this.send, this.stop);
      this.root.append(head, this.log, this.notice, this.form);
      root.append(this.root);

      this.form.addEventListener("submit", (event) => {
        event.preventDefault();
        const text = this.input.value.trim();
        if (text && !this.controller) this.ask(text);
      });
      this.stop.addEventListener("click", () => this.abort());
      this.root.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && this.controller) {
          event.preventDefault();
          this.abort();
        }
      });
    }

    async token() {
      const token = await this.getToken();
      if (!token) throw new RequestFailed(401, explain(401, null, new Headers()));
      return token;
    }

    async request(method, path, { body, headers } = {}, signal) {
      const init = {
        method,
        signal,
        headers: Object.assign({ Authorization: `Bearer ${await this.token()}` }, headers),
      };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      let response;
      try {
        response = await fetch(`${this.url}${path}`, init);
      } catch (error) {
        if (error.name === "AbortError") throw error;
        throw new RequestFailed(0, "Cannot reach the assistant. Check your connection and try again.");
      }
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        const wait = response.status === 429 ? retryAfter(response.headers, data) : undefined;
        throw new RequestFailed(response.status, explain(response.status, data, response.headers), wait);
      }
      return response;
    }

    say(text, { busyFor } = {}) {
      this.notice.textContent = text;
      this.notice.hidden = false;
      clearInterval(this.countdown);
      if (!busyFor) return;
      let left = busyFor;
      this.send.disabled = true;
      this.countdown = setInterval(() => {
        left -= 1;
        if (left > 0) {
          this.notice.textContent = text.replace(/\d+ s\./, `${left} s.`);
          return;
        }
        clearInterval(this.countdown);
        this.send.disabled = false;
        this.notice.hidden = true;
      }, 1000);
    }

    busy(on) {
      this.send.hidden = on;
      this.stop.hidden = !on;
      if (on) this.stop.focus();
      else this.input.focus();
    }

    abort() {
      if (this.controller) this.controller.abort();
    }

    bubble(role, text) {
      const message = el("article", `ww-msg ww-${role}`);
      message.setAttribute("aria-label", role === "user" ? "You said" : "Assistant");
      if (text !== undefined) message.append(el("p", "ww-text", text));
      this.log.append(message);
      this.log.scrollTop = this.log.scrollHeight;
      return message;
    }

    async ask(text) {
      this.notice.hidden = true;
      this.input.value = "";
      this.bubble("user", text);
      this.history.push({ role: "user", content: text });
      const answer = new Answer(this, this.bubble("assistant"));
      this.controller = new AbortController();
      this.busy(true);
      try {
        const response = await this.request(
          "POST",
          `/v1/households/${encodeURIComponent(this.household)}/chat`,
          { body: { messages: this.history.slice(-MAX_HISTORY) } },
          this.controller.signal,
        );
        await answer.read(response.body);
      } catch (error) {
        if (error.name === "AbortError") answer.stopped();
        else if (error instanceof RequestFailed) {
          answer.failed();
          if (!this.input.value) this.input.value = text; // ready to send again
          this.say(error.message, { busyFor: error.retryAfter });
        } else {
          answer.failed();
          this.say("Something went wrong while reading the answer. Please try again.");
        }
      } finally {
        this.controller = null;
        answer.done();
        this.busy(false);
      }
      const said = answer.text();
      if (said) this.history.push({ role: "assistant", content: said });
      else this.history.pop(); // unanswered: ask it again as if new
      for (const card of this.cards.values()) if (card.status === "proposed") card.refresh();
    }
  }

  /* The household's power now, in the header, from the live stream. */
  class Live {
    constructor(widget, node) {
      this.widget = widget;
      this.node = node;
      this.controller = null;
      this.failures = 0;
      this.timer = null;
      this.staleTimer = null; // redraws the figures as stale when their time comes
      this.given = false; // a refusal (401, 403, 404) ends it for good
      document.addEventListener("visibilitychange", () => {
        if (document.hidden) this.pause();
        else this.start();
      });
    }

    start() {
      if (this.controller || this.given || document.hidden) return;
      clearTimeout(this.timer);
      const controller = new AbortController();
      this.controller = controller;
      this.run(controller.signal).finally(() => {
        if (this.controller === controller) this.controller = null;
        if (!controller.signal.aborted && !this.given) this.later();
      });
    }

    pause() {
      clearTimeout(this.timer);
      if (this.controller) this.controller.abort();
      this.controller = null;
    }

    later() {
      const wait = LIVE_RETRY_MS[Math.min(this.failures, LIVE_RETRY_MS.length - 1)];
      this.failures += 1;
      this.timer = setTimeout(() => this.start(), wait);
    }

    async run(signal) {
      const path = `/v1/households/${encodeURIComponent(this.widget.household)}/live/stream`;
      try {
        const response = await this.widget.request("GET", path, {}, signal);
        for await (const { event, data } of events(response.body)) {
          if (event === "live") {
            this.show(JSON.parse(data));
            this.failures = 0;
          } else if (event === "end" && JSON.parse(data).code === "access_revoked") {
            this.give();
          }
        }
      } catch (error) {
        if (error.name === "AbortError") return;
        if (error instanceof RequestFailed && [401, 403, 404].includes(error.status)) this.give();
      }
    }

    give() {
      this.given = true;
      clearTimeout(this.staleTimer);
      this.node.hidden = true;
    }

    show(state) {
      this.state = state;
      this.received = Date.now();
      this.render();
    }

    /* The newest reading's age now, in ms: its age when the server sent the state (by the
       server's clock, so a browser clock that is off does not matter) plus the time since. */
    age() {
      const ages = this.state.devices.map((d) => d.age_seconds).filter((a) => a !== null);
      if (!ages.length) return null;
      return Math.min(...ages) * 1000 + (Date.now() - this.received);
    }

    render() {
      clearTimeout(this.staleTimer);
      const state = this.state;
      const age = this.age();
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      this.node.hidden = false;
      this.node.dataset.houseLoadWatts = String(state.house_load_watts);
      if (age === null || !state.fresh_as_of) {
        this.node.dataset.stale = "true";
        this.node.textContent = "No readings yet";
        this.node.title = "";
        return;
      }
      const today = sameLocalDay(zone, state.fresh_as_of, new Date());
      const asOf = timeIn(zone, state.fresh_as_of, !today);
      this.node.title = `As of ${asOf}`;
      if (age >= LIVE_STALE_MS) {
        this.node.dataset.stale = "true";
        this.node.textContent = `As of ${asOf}, no newer readings`;
        return;
      }
      this.node.dataset.stale = "false";
      this.staleTimer = setTimeout(() => this.render(), LIVE_STALE_MS - age);
      const kinds = new Set(state.devices.map((d) => d.kind));
      const parts = [`Now ${power(state.house_load_watts)} in use`];
      if (kinds.has("solar")) parts.push(`solar ${power(state.solar_watts)}`);
      if (kinds.has("grid")) {
        parts.push(
          state.grid_export_watts > 0
            ? `${power(state.grid_export_watts)} to the grid`
            : `${power(state.grid_import_watts)} from the grid`,
        );
      }
      this.node.textContent = parts.join(" · ");
    }
  }

  /* One assistant message, built from the stream's chunks as they arrive. */
  class Answer {
    constructor(widget, node) {
      this.widget = widget;
      this.node = node;
      this.node.setAttribute("aria-busy", "true");
      this.meta = el("p", "ww-meta");
      this.meta.hidden = true;
      this.body = el("div", "ww-body");
      this.node.append(this.meta, this.body);
      this.paragraph = null;
      this.route = null;
      this.context = null;
    }

    async read(stream) {
      for await (const { data } of events(stream)) {
        if (data !== "[DONE]") this.chunk(JSON.parse(data));
      }
    }

    chunk(chunk) {
      switch (chunk.type) {
        case "text-start":
          this.paragraph = el("p", "ww-text");
          this.body.append(this.paragraph);
          break;
        case "text-delta":
          if (!this.paragraph) this.chunk({ type: "text-start" });
          this.paragraph.append(chunk.delta);
          this.widget.log.scrollTop = this.widget.log.scrollHeight;
          break;
        case "text-end":
          this.paragraph = null;
          break;
        case "data-route":
          this.route = chunk.data;
          break;
        case "data-context":
          this.showContext(chunk.data);
          break;
        case "data-verification":
          this.showVerification(chunk.data);
          break;
        case "data-action":
          this.showAction(chunk.data);
          break;
        case "data-command":
          this.commandSent(chunk.data);
          break;
        case "error":
          this.node.classList.add("ww-error");
          this.body.append(el("p", "ww-text ww-problem", chunk.errorText));
          break;
        case "finish":
          this.finished = true;
          break;
        default:
          break; // start, steps, tool calls, usage: nothing to show
      }
    }

    showContext(context) {
      this.context = context;
      const parts = [];
      if (context.window) parts.push(windowLabel(context.window));
      if (context.fresh_as_of) {
        parts.push(`data as of ${timeIn(context.timezone, context.fresh_as_of, true)}`);
      }
      parts.push(context.timezone);
      this.meta.textContent = parts.join(" · ");
      this.meta.hidden = false;
    }

    showVerification(check) {
      const notes = [];
      const replaced = check.replaced.length;
      const dropped = check.dropped.length;
      if (replaced) {
        notes.push(
          `${replaced === 1 ? "One sentence" : `${replaced} sentences`} stated a figure the server could not confirm and ${replaced === 1 ? "was" : "were"} replaced with the figure from your meter data.`,
        );
      }
      if (dropped) {
        notes.push(
          `${dropped === 1 ? "One sentence was" : `${dropped} sentences were`} left out because ${dropped === 1 ? "it" : "they"} could not be checked.`,
        );
      }
      const figures = check.numbers_checked.length;
      if (!figures && !notes.length) return;
      const box = el("div", notes.length ? "ww-check ww-corrected" : "ww-check ww-verified");
      const head = notes.length
        ? "Checked and corrected:"
        : `Verified: ${figures === 1 ? "the figure matches" : `all ${figures} figures match`} your meter data`;
      box.append(el("strong", "", head));
      for (const note of notes) box.append(` ${note}`);
      if (check.degraded) {
        box.append(el("span", "ww-degraded", " Written by the server from your data, without the assistant model."));
      }
      this.node.append(box);
    }

    showAction(action) {
      const card = new Card(this.widget, action);
      this.widget.cards.set(action.id, card);
      this.node.append(card.node);
    }

    commandSent(command) {
      const card = this.widget.cards.get(command.action_id);
      if (card) card.update("sent");
    }

    text() {
      return Array.from(this.body.querySelectorAll(".ww-text:not(.ww-problem)"), (p) => p.textContent)
        .join(" ")
        .trim();
    }

    stopped() {
      this.node.classList.add("ww-stopped");
      this.node.append(el("p", "ww-note", "Stopped."));
    }

    failed() {
      if (!this.body.childNodes.length) this.node.remove();
    }

    done() {
      this.node.setAttribute("aria-busy", "false");
      const branch = this.route && this.route.branch;
      const window = this.context && this.context.window;
      if (this.finished && window && (branch === "energy" || branch === "cost")) {
        charts(this.widget, window).then((figure) => figure && this.node.append(figure));
      }
    }
  }

  /* A proposal: the device, the change, the expiry; Confirm and Cancel; then the command. */
  class Card {
    constructor(widget, action) {
      this.widget = widget;
      this.action = action;
      this.key = randomKey(); // one key per card: a retried confirm replays, never repeats
      this.node = el("div", "ww-card");
      this.node.setAttribute("role", "group");
      this.node.setAttribute("aria-label", `Proposed change: ${change(action)}`);
      this.node.dataset.actionId = action.id;
      const title = el("p", "ww-card-title", change(action));
      this.state = el("p", "ww-card-state");
      this.state.setAttribute("aria-live", "polite");
      this.buttons = el("div", "ww-card-buttons");
      this.confirm = el("button", "ww-confirm", "Confirm");
      this.cancel = el("button", "ww-cancel", "Cancel");
      for (const b of [this.confirm, this.cancel]) b.type = "button";
      this.buttons.append(this.confirm, this.cancel);
      this.node.append(title, this.state, this.buttons);
      this.confirm.addEventListener("click", () => this.decide("confirm"));
      this.cancel.addEventListener("click", () => this.decide("cancel"));
      this.update(action.status);
    }

    path(suffix) {
      return `/v1/actions/${encodeURIComponent(this.action.id)}${suffix}`;
    }

    update(status, detail) {
      this.status = status;
      this.node.dataset.status = status;
      this.buttons.hidden = status !== "proposed";
      clearInterval(this.ticker);
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (status === "proposed") {
        const tick = () => {
          const left = Date.parse(this.action.expires_at) - Date.now();
          if (left <= 0) {
            clearInterval(this.ticker);
            this.refresh();
            return;
          }
          const m = Math.floor(left / 60000);
          const s = Math.floor((left % 60000) / 1000);
          this.state.textContent = `Waiting for your confirmation. Expires at ${timeIn(zone, this.action.expires_at, false)} (in ${m}:${String(s).padStart(2, "0")}).`;
        };
        tick();
        this.ticker = setInterval(tick, 1000);
        return;
      }
      const said = {
        confirmed: "Confirmed. Sending the command to your home…",
        sent: "Sent to your home. Waiting for the device to acknowledge…",
        acknowledged: "Done: the device acknowledged the command.",
        failed: `The device could not carry it out${detail ? `: ${detail}` : "."}`,
        cancelled: "Cancelled. Nothing was sent.",
        expired: "This proposal expired before it was confirmed. Nothing was sent.",
      }[status];
      this.state.textContent = said || status;
      if (status === "sent" || status === "confirmed") this.follow();
    }

    async decide(what) {
      this.confirm.disabled = this.cancel.disabled = true;
      try {
        const response = await this.widget.request("POST", this.path(`/${what}`), {
          headers: { "Idempotency-Key": `${what}-${this.key}` },
        });
        const data = await response.json();
        this.update(data.action.status);
      } catch (error) {
        this.state.textContent = error.message;
        await this.refresh();
      } finally {
        this.confirm.disabled = this.cancel.disabled = false;
      }
    }

    async refresh() {
      try {
        const response = await this.widget.request("GET", this.path(""));
        const { action, events } = await response.json();
        const last = events.length ? events[events.length - 1] : {};
        if (action.status !== this.status) this.update(action.status, last.detail);
        else if (action.status === "proposed" && Date.parse(action.expires_at) <= Date.now()) {
          // This clock runs ahead of the server's, which decides expiry: ask again.
          setTimeout(() => this.refresh(), 2000);
        }
      } catch (error) {
        this.state.textContent = error.message;
      }
    }

    follow() {
      if (this.following) return;
      this.following = true;
      const started = Date.now();
      let round = 0;
      const next = async () => {
        await this.refresh();
        if (ENDED.has(this.status) || Date.now() - started > POLL_FOR_MS) {
          this.following = false;
          return;
        }
        setTimeout(next, POLL_MS[Math.min(round++, POLL_MS.length - 1)]);
      };
      setTimeout(next, POLL_MS[0]);
    }
  }

  /* A sparkline of the window's energy per bucket and bars of its top devices. */
  async function charts(widget, window) {
    const hours = (Date.parse(window.end) - Date.parse(window.start)) / 3600000;
    const query = new URLSearchParams({ start: window.start, end: window.end, tz: window.timezone });
    const base = `/v1/households/${encodeURIComponent(widget.household)}`;
    const seriesQuery = new URLSearchParams(query);
    seriesQuery.set("step", hours <= 48 ? "1h" : "1d");
    const topQuery = new URLSearchParams(query);
    topQuery.set("limit", "5");
    let series;
    let top;
    try {
      [series, top] = await Promise.all([
        widget.request("GET", `${base}/energy/series?${seriesQuery}`).then((r) => r.json()),
        widget.request("GET", `${base}/top-devices?${topQuery}`).then((r) => r.json()),
      ]);
    } catch {
      return null; // the answer stands without its charts
    }
    const figure = el("figure", "ww-charts");
    const line = sparkline(series, window);
    if (line) figure.append(line);
    const bars = topBars(top);
    if (bars) figure.append(bars);
    return figure.childNodes.length ? figure : null;
  }

  /* Average power per bucket (kWh over the hours it covers, up to the newest reading):
     a partial last hour or a 23-hour DST day is then drawn at its true height. */
  function sparkline(series, window) {
    const fresh = series.fresh_as_of ? Date.parse(series.fresh_as_of) : Date.parse(window.end);
    const points = [];
    for (const b of series.buckets) {
      const hours = (Math.min(Date.parse(b.end), fresh) - Date.parse(b.start)) / 3600000;
      if (hours > 0) points.push({ start: b.start, kw: (b.consumption_kwh ?? 0) / hours });
    }
    if (points.length < 2) return null;
    const width = 240;
    const height = 48;
    const peak = points.reduce((a, b) => (b.kw > a.kw ? b : a));
    const top = peak.kw > 0 ? peak.kw : 1;
    const x = (i) => (i / (points.length - 1)) * width;
    const y = (kw) => height - 2 - (kw / top) * (height - 4);
    const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p.kw).toFixed(1)}`).join(" ");
    const daily = series.step === "1d";
    const peakText = `peak ${peak.kw.toFixed(2)} kW ${daily ? "on" : "at"} ${daily ? dayIn(window.timezone, peak.start) : timeIn(window.timezone, peak.start, false)}`;
    const summary = `Average power ${daily ? "per day" : "per hour"}, ${windowLabel(window)}: ${peakText}.`;
    const chart = svg("svg", {
      class: "ww-spark",
      viewBox: `0 0 ${width} ${height}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": summary,
    });
    const title = svg("title", {});
    title.textContent = summary;
    chart.append(
      title,
      svg("polygon", { class: "ww-spark-area", points: `0,${height} ${line} ${width},${height}` }),
      svg("polyline", { class: "ww-spark-line", points: line }),
    );
    const box = el("div", "ww-chart");
    box.append(el("p", "ww-chart-title", `Average power, ${daily ? "daily" : "hourly"} · ${peakText}`), chart);
    return box;
  }

  function topBars(top) {
    const devices = top.devices.filter((d) => d.kwh > 0);
    if (!devices.length) return null;
    const most = devices[0].kwh;
    const list = el("ul", "ww-bars");
    list.setAttribute("aria-label", "Top devices");
    for (const d of devices) {
      const item = el("li", "ww-bar");
      const fill = el("span", "ww-bar-fill");
      fill.style.width = `${Math.max(2, (d.kwh / most) * 100).toFixed(1)}%`;
      const track = el("span", "ww-bar-track");
      track.setAttribute("aria-hidden", "true");
      track.append(fill);
      item.append(el("span", "ww-bar-name", d.name), track, el("span", "ww-bar-value", kwh(d.kwh)));
      list.append(item);
    }
    const box = el("div", "ww-chart");
    box.append(el("p", "ww-chart-title", "Top devices"), list);
    return box;
  }

  function stylesheet(base) {
    const href = new URL("widget.css", base).href;
    if ([...document.querySelectorAll("link[rel=stylesheet]")].some((l) => l.href === href)) return;
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.append(link);
  }

  function mount(target, options) {
    const root = typeof target === "string" ? document.querySelector(target) : target;
    if (!root) throw new Error(`wattwise: no element ${target}`);
    return new Widget(root, options);
  }

  window.Wattwise = { mount };

  if (SCRIPT) {
    if (SCRIPT.dataset.css !== "none") stylesheet(SCRIPT.src);
    const { household, tokenProvider, target, live } = SCRIPT.dataset;
    if (household && tokenProvider) {
      const start = () => {
        let root = target ? document.querySelector(target) : null;
        if (!root) {
          root = el("div", "ww-host");
          SCRIPT.after(root);
        }
        mount(root, {
          url: SCRIPT.dataset.url,
          household,
          live: live !== "off",
          getToken: () => {
            const provider = window[tokenProvider];
            if (typeof provider !== "function") {
              throw new Error(`wattwise: ${tokenProvider} is not a global function`);
            }
            return provider();
          },
        });
      };
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
      else start();
    }
  }
})();
