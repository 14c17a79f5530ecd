// The live WebSocket (/ws, trading_daemon/api/hub.py): authenticate with the first message, subscribe to
// every topic some page wants, dispatch messages by topic, and reconnect with jittered exponential backoff
// (reset after a connection that stayed up). The server's "hello" marks the connection as live. After a
// reconnect the pages are told (`onReconnect`) so they can re-read what they may have missed.
import type { ConnectionState, Topic, WsMessage } from "./types";

export type TopicHandler = (data: unknown, msg: WsMessage) => void;

export interface LiveClientOptions {
  url: () => string;
  token: () => string | null;
  /** Get a fresh access token after the server refused ours; false when the session is over. */
  refresh: () => Promise<boolean>;
  /** Browser hooks, replaceable in tests. */
  WebSocketImpl?: typeof WebSocket;
  isOnline?: () => boolean;
}

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
const OFFLINE_AFTER_ATTEMPTS = 5; // failures in a row before the header says "offline" (still retrying)
const PING_EVERY_MS = 20_000;
const STALE_AFTER_MS = 60_000; // nothing heard for this long: the socket is dead even if not closed
const STABLE_AFTER_MS = 10_000; // a connection that lasted this long resets the backoff
// Close codes of a refused token: routes/ws.py closes with 4401 (HTTP's 401 in the application range);
// 1008 (policy violation) is what other servers use for the same.
const AUTH_CLOSE_CODES = new Set([1008, 4401]);
// Topics the server subscribes every client to and sends a snapshot of (hub.py STATE_TOPICS).
const STATE_TOPICS = new Set(["bot", "model", "metrics"]);

/** Delay before attempt `n` (0-based): exponential, capped, with ±25 % jitter so tabs do not stampede. */
export function backoffDelay(n: number, random: () => number = Math.random): number {
  const raw = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.min(n, 16));
  return Math.round(raw * (0.75 + random() * 0.5));
}

export function defaultWsUrl(): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws`;
}

export class LiveClient {
  private ws: WebSocket | null = null;
  private state: ConnectionState = "reconnecting";
  private attempt = 0;
  private running = false;
  private everConnected = false;
  private openedAt = 0;
  private lastHeard = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private greeted = false; // the server's hello arrived: the token was accepted
  private readonly wanted = new Map<string, number>();
  private readonly handlers = new Map<string, Set<TopicHandler>>();
  private readonly stateListeners = new Set<(s: ConnectionState) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  lastSeq: number | null = null;
  lastError: string | null = null;

  constructor(private readonly opts: LiveClientOptions) {}

  get connectionState(): ConnectionState {
    return this.state;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (typeof window !== "undefined") {
      window.addEventListener("online", this.onOnline);
      window.addEventListener("offline", this.onOffline);
    }
    this.connect();
  }

  stop(): void {
    this.running = false;
    if (typeof window !== "undefined") {
      window.removeEventListener("online", this.onOnline);
      window.removeEventListener("offline", this.onOffline);
    }
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, "logout");
      } catch {
        // already closing
      }
    }
    this.setState("offline");
  }

  /** Listen to a topic; the topic is subscribed while at least one listener wants it. */
  subscribe(topic: Topic | "hello" | "error" | "subscribed", handler: TopicHandler): () => void {
    let set = this.handlers.get(topic);
    if (!set) this.handlers.set(topic, (set = new Set()));
    set.add(handler);
    const isDataTopic = topic !== "hello" && topic !== "error" && topic !== "subscribed";
    if (isDataTopic) {
      const before = this.wanted.get(topic) ?? 0;
      this.wanted.set(topic, before + 1);
      if (before === 0) this.sendSubscriptions();
    }
    return () => {
      set?.delete(handler);
      if (isDataTopic) {
        const n = (this.wanted.get(topic) ?? 1) - 1;
        if (n <= 0) {
          this.wanted.delete(topic);
          // Busy topics (book) cost bandwidth; the server's state topics are cheap and stay.
          if (!STATE_TOPICS.has(topic)) this.send({ op: "unsubscribe", topics: [topic] });
        } else {
          this.wanted.set(topic, n);
        }
      }
    };
  }

  onState(cb: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(cb);
    return () => this.stateListeners.delete(cb);
  }

  onReconnect(cb: () => void): () => void {
    this.reconnectListeners.add(cb);
    return () => this.reconnectListeners.delete(cb);
  }

  private readonly onOnline = () => {
    if (!this.running || this.ws) return;
    this.attempt = 0;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  };

  private readonly onOffline = () => this.setState("offline");

  private setState(next: ConnectionState): void {
    if (next === this.state) return;
    this.state = next;
    for (const cb of this.stateListeners) cb(next);
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.retryTimer = null;
    this.pingTimer = null;
  }

  private send(payload: unknown): void {
    if (this.ws && this.ws.readyState === 1 && (this.greeted || (payload as { op?: string }).op === "auth")) {
      this.ws.send(JSON.stringify(payload));
    }
  }

  private sendSubscriptions(): void {
    // The whole set each time: correct whether the server adds to or replaces a subscription.
    if (this.wanted.size) this.send({ op: "subscribe", topics: [...this.wanted.keys()] });
  }

  private connect(): void {
    if (!this.running) return;
    const token = this.opts.token();
    if (!token) {
      this.setState("offline");
      return;
    }
    const Impl = this.opts.WebSocketImpl ?? WebSocket;
    let ws: WebSocket;
    try {
      ws = new Impl(this.opts.url());
    } catch (err) {
      this.lastError = String(err);
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.greeted = false;
    ws.onopen = () => {
      this.openedAt = Date.now();
      this.lastHeard = this.openedAt;
      this.send({ op: "auth", token: this.opts.token() ?? token });
      this.pingTimer = setInterval(() => {
        if (Date.now() - this.lastHeard > STALE_AFTER_MS) {
          ws.close(4000, "stale");
          return;
        }
        this.send({ op: "ping", ts: Date.now() });
      }, PING_EVERY_MS);
    };
    ws.onmessage = (ev: MessageEvent) => {
      this.lastHeard = Date.now();
      let msg: WsMessage;
      try {
        msg = JSON.parse(String(ev.data)) as WsMessage;
      } catch {
        return;
      }
      if (!msg || typeof msg.topic !== "string") return;
      if (typeof msg.seq === "number" && !msg.snapshot) this.lastSeq = msg.seq;
      if (msg.topic === "hello") this.onHello();
      if (msg.topic === "error") this.onServerError(msg);
      const set = this.handlers.get(msg.topic);
      if (set) for (const h of set) h(msg.data, msg);
    };
    ws.onerror = () => {
      this.lastError = "connection error";
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.pingTimer) clearInterval(this.pingTimer);
      this.pingTimer = null;
      if (this.ws === ws) this.ws = null;
      if (!this.running) return;
      if (this.openedAt && Date.now() - this.openedAt > STABLE_AFTER_MS) this.attempt = 0;
      this.openedAt = 0;
      if (AUTH_CLOSE_CODES.has(ev.code)) {
        this.lastError = ev.reason || "the server refused the token";
        // A failed refresh is left to the HTTP side: its next 401 ends the session and stops this client.
        void this.opts.refresh().finally(() => this.scheduleRetry());
        return;
      }
      this.scheduleRetry();
    };
  }

  private onHello(): void {
    this.greeted = true;
    this.setState("connected");
    this.sendSubscriptions();
    if (this.everConnected) for (const cb of this.reconnectListeners) cb();
    this.everConnected = true;
  }

  private onServerError(msg: WsMessage): void {
    // The socket stays open after an error about a message; a refused token is told by the close code.
    const data = msg.data as { error?: string; message?: string; detail?: string } | string | null;
    const text = typeof data === "string" ? data : (data?.error ?? data?.message ?? data?.detail ?? "");
    this.lastError = text || "server error";
  }

  private scheduleRetry(): void {
    if (!this.running) return;
    const online = this.opts.isOnline ? this.opts.isOnline() : typeof navigator === "undefined" || navigator.onLine;
    this.setState(!online || this.attempt >= OFFLINE_AFTER_ATTEMPTS ? "offline" : "reconnecting");
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }
}
