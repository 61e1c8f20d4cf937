// A chat's event stream (GET /api/chat/<id>/messages/), read with fetch so that the token goes in
// a header. It reconnects by itself after a network drop or a server restart, sending the id of the
// last event it saw (Last-Event-ID) so that it receives exactly what it missed.

export class ChatStream {
  constructor(chatId, session, { onEvent, onStatus }) {
    this.url = `/api/chat/${chatId}/messages/`;
    this.session = session;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.lastEventId = null;
    this.controller = new AbortController();
    this.closed = false;
    this.run();
  }

  close() {
    this.closed = true;
    this.controller.abort();
  }

  async run() {
    let delay = 500;
    while (!this.closed) {
      let outcome = "dropped";
      try {
        const headers = { Accept: "text/event-stream", Authorization: "Bearer " + (await this.session.accessToken()) };
        if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
        const response = await fetch(this.url, { headers, signal: this.controller.signal, cache: "no-store" });
        if (response.status === 401) { this.session.access = null; continue; }
        if (response.status === 404) { this.onStatus("gone"); return; }
        if (!response.ok) throw new Error(`stream answered ${response.status}`);
        this.onStatus("live");
        delay = 500;
        for await (const event of parseEvents(response.body)) {
          if (event.id) this.lastEventId = event.id;
          if (event.type === "error") {
            const problem = JSON.parse(event.data || "{}");
            if (problem.status === 410) { this.onStatus("gone"); return; }
            if (problem.status === 401) this.session.access = null;
            outcome = "retry";
            break;
          }
          this.onEvent(event);
        }
      } catch (error) {
        if (this.closed) return;
        if (error && error.status === 401) { this.onStatus("signed-out"); return; }
      }
      if (this.closed) return;
      this.onStatus(outcome === "retry" ? "live" : "reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
}

/** Server-sent events from a response body: {id, type, data}. */
export async function* parseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { id: null, type: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (event.data.length > 0) yield { id: event.id, type: event.type, data: event.data.join("\n") };
        event = { id: null, type: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") event.id = value;
      else if (field === "event") event.type = value;
      else if (field === "data") event.data.push(value);
    }
  }
}
