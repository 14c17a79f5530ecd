import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LiveClient } from "./ws";

// A stand-in for the browser's WebSocket: records what the client sends, lets the test play the server.
class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(public url: string) {
    FakeSocket.all.push(this);
  }
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  serve(topic: string, data: unknown, extra: Record<string, unknown> = {}) {
    this.onmessage?.({ data: JSON.stringify({ topic, data, ts: 1, ...extra }) });
  }
}

function client(token = "t1", refresh = vi.fn(async () => true)) {
  const c = new LiveClient({
    url: () => "ws://x/ws",
    token: () => token,
    refresh,
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
    isOnline: () => true,
  });
  return { c, refresh };
}

describe("LiveClient", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("authenticates first, subscribes after the hello, dispatches by topic", () => {
    const { c } = client();
    const states: string[] = [];
    c.onState((s) => states.push(s));
    const books: unknown[] = [];
    c.subscribe("book", (d) => books.push(d));
    c.start();
    const ws = FakeSocket.all[0]!;
    ws.open();
    expect(ws.sent).toEqual([{ op: "auth", token: "t1" }]);
    expect(c.connectionState).not.toBe("connected");
    ws.serve("hello", { subscribed: ["bot", "model", "metrics"] });
    expect(c.connectionState).toBe("connected");
    expect(ws.sent[1]).toEqual({ op: "subscribe", topics: ["book"] });
    ws.serve("book", { symbol: "BTCUSDT", mid: 1 }, { seq: 5 });
    ws.serve("metrics", {}, { seq: 6 });
    expect(books).toEqual([{ symbol: "BTCUSDT", mid: 1 }]);
    expect(c.lastSeq).toBe(6);
    expect(states).toEqual(["connected"]);
    c.stop();
  });

  it("unsubscribes a busy topic nobody wants, keeps the state topics", () => {
    const { c } = client();
    c.start();
    const ws = FakeSocket.all[0]!;
    ws.open();
    ws.serve("hello", {});
    const offBook = c.subscribe("book", () => undefined);
    const offBot = c.subscribe("bot", () => undefined);
    offBook();
    offBot();
    expect(ws.sent.slice(-1)).toEqual([{ op: "unsubscribe", topics: ["book"] }]);
    expect(ws.sent).not.toContainEqual({ op: "unsubscribe", topics: ["bot"] });
    c.stop();
  });

  it("reconnects with backoff, resubscribes and announces the reconnect", () => {
    const { c } = client();
    const reconnects = vi.fn();
    c.onReconnect(reconnects);
    c.subscribe("order", () => undefined);
    c.start();
    FakeSocket.all[0]!.open();
    FakeSocket.all[0]!.serve("hello", {});
    FakeSocket.all[0]!.close(1006);
    expect(c.connectionState).toBe("reconnecting");
    vi.advanceTimersByTime(700);
    const second = FakeSocket.all[1]!;
    second.open();
    second.serve("hello", {});
    expect(second.sent).toEqual([{ op: "auth", token: "t1" }, { op: "subscribe", topics: ["order"] }]);
    expect(reconnects).toHaveBeenCalledTimes(1);
    expect(c.connectionState).toBe("connected");
    c.stop();
  });

  it("refreshes the token when the server refuses it (4401), then tries again", async () => {
    const { c, refresh } = client();
    c.start();
    FakeSocket.all[0]!.open();
    FakeSocket.all[0]!.serve("error", { error: "authentication failed: token expired" });
    FakeSocket.all[0]!.close(4401, "unauthorized");
    await vi.waitFor(() => expect(refresh).toHaveBeenCalledTimes(1));
    await vi.advanceTimersByTimeAsync(700);
    expect(FakeSocket.all).toHaveLength(2);
    c.stop();
  });

  it("says offline after repeated failures and while stopped", () => {
    const { c } = client();
    c.start();
    for (let i = 0; i < 6; i++) {
      FakeSocket.all[i]!.close(1006);
      vi.advanceTimersByTime(40_000);
    }
    expect(c.connectionState).toBe("offline");
    c.stop();
    expect(c.connectionState).toBe("offline");
  });
});
