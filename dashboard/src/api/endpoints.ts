// Every route the dashboard calls, typed. When a route's real shape differs from the contract, the
// adjustment belongs here (and in ./types.ts), not in the pages.
import { ApiError, clearAuth, request, storeTokens } from "./client";
import type {
  Balance,
  BotAction,
  BotStatus,
  Candle,
  CircuitBreaker,
  CloseResult,
  DetectionStatus,
  DriftHistory,
  DriftPoint,
  DriftReport,
  ExecutionStats,
  Health,
  KillSwitchResult,
  Levels,
  MlProduction,
  MlStatus,
  ModelDetail,
  ModelSummary,
  Order,
  OrderBook,
  OrderDetail,
  OrderPage,
  OrderQuery,
  Pair,
  Position,
  RateLimiter,
  Ready,
  ReconciliationSummary,
  RecoveryStatus,
  ReloadResult,
  RetrainingRun,
  RiskStatus,
  Signal,
  StrategiesOverview,
  StrategyToggle,
  SymbolMetrics,
  TokenPair,
  VerifyResponse,
} from "./types";

const enc = encodeURIComponent;

/** A list, whether the route answers `[...]` or wraps it as `{items: [...]}` / `{<key>: [...]}`. */
export function asList<T>(body: unknown, ...keys: string[]): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === "object") {
    const obj = body as Record<string, unknown>;
    for (const key of [...keys, "items", "data", "results"]) {
      if (Array.isArray(obj[key])) return obj[key] as T[];
    }
  }
  return [];
}

/** A map symbol -> value, whether the route answers a map or a list of rows carrying `symbol`. */
export function asSymbolMap<T extends { symbol?: string }>(body: unknown): Record<string, T> {
  if (Array.isArray(body)) {
    const out: Record<string, T> = {};
    for (const row of body as T[]) if (row?.symbol) out[row.symbol] = row;
    return out;
  }
  if (body && typeof body === "object") {
    const obj = body as Record<string, unknown>;
    const inner = obj.metrics ?? obj.items;
    if (inner && typeof inner === "object") return asSymbolMap<T>(inner);
    const out: Record<string, T> = {};
    for (const [symbol, value] of Object.entries(obj)) {
      if (value && typeof value === "object") out[symbol] = { symbol, ...(value as T) };
    }
    return out;
  }
  return {};
}

function normaliseOrderPage(body: unknown, query: OrderQuery): OrderPage {
  const obj = (body && typeof body === "object" ? body : {}) as Partial<OrderPage>;
  const items = asList<Order>(body, "orders");
  return {
    items,
    total: typeof obj.total === "number" ? obj.total : items.length,
    page: typeof obj.page === "number" ? obj.page : (query.page ?? 1),
    page_size: typeof obj.page_size === "number" ? obj.page_size : (query.page_size ?? items.length),
    stats: obj.stats,
  };
}

/** Severity points grouped by symbol, oldest first: {points: [...]} as routes/ml.py sends it, or a bare list. */
export function driftBySymbol(body: unknown): Record<string, DriftPoint[]> {
  const out: Record<string, DriftPoint[]> = {};
  for (const p of asList<DriftPoint>(body, "points")) {
    const ts = p.window_end_ms ?? p.created_ms;
    if (typeof ts !== "number") continue;
    (out[p.symbol ?? "all"] ??= []).push({ ...p, window_end_ms: ts });
  }
  for (const points of Object.values(out)) points.sort((a, b) => a.window_end_ms - b.window_end_ms);
  return out;
}

export const api = {
  auth: {
    async login(username: string, password: string): Promise<TokenPair> {
      const pair = await request<TokenPair>("POST", "/api/auth/login", { body: { username, password }, auth: false });
      storeTokens(pair);
      return pair;
    },
    async changePassword(current_password: string, new_password: string): Promise<TokenPair> {
      const pair = await request<TokenPair>("POST", "/api/auth/change-password", {
        body: { current_password, new_password },
      });
      if (pair?.access_token) storeTokens(pair);
      return pair;
    },
    verify: () => request<VerifyResponse>("GET", "/api/auth/verify"),
    logout(): void {
      clearAuth();
    },
  },

  bot: {
    status: (signal?: AbortSignal) => request<BotStatus>("GET", "/api/bot/status", { signal }),
    start: (reason: string) => request<BotAction>("POST", "/api/bot/start", { body: { reason } }),
    stop: (reason: string) => request<BotAction>("POST", "/api/bot/stop", { body: { reason } }),
    config: () => request<Record<string, unknown>>("GET", "/api/bot/config"),
  },

  data: {
    pairs: async (signal?: AbortSignal) =>
      asList<Pair>(await request<unknown>("GET", "/api/data/pairs", { signal }), "pairs"),
    orderbook: (symbol: string, depth = 20, signal?: AbortSignal) =>
      request<OrderBook>("GET", `/api/data/orderbook/${enc(symbol)}`, { query: { depth }, signal }),
    metrics: async (signal?: AbortSignal) =>
      asSymbolMap<SymbolMetrics>(await request<unknown>("GET", "/api/data/metrics", { signal })),
    symbolMetrics: (symbol: string) => request<SymbolMetrics>("GET", `/api/data/metrics/${enc(symbol)}`),
  },

  market: {
    klines: async (symbol: string, interval = 5, limit = 200, signal?: AbortSignal) =>
      asList<Candle>(
        await request<unknown>("GET", `/api/market/klines/${enc(symbol)}`, { query: { interval, limit }, signal }),
        "klines",
        "candles",
      ),
  },

  trading: {
    balance: (signal?: AbortSignal) => request<Balance>("GET", "/api/trading/balance", { signal }),
    positions: async (signal?: AbortSignal) =>
      asList<Position>(await request<unknown>("GET", "/api/trading/positions", { signal }), "positions"),
    riskStatus: (signal?: AbortSignal) => request<RiskStatus>("GET", "/api/trading/risk-status", { signal }),
    executionStats: (signal?: AbortSignal) =>
      request<ExecutionStats>("GET", "/api/trading/execution-stats", { signal }),
    signals: async (q: { symbol?: string; source?: string; limit?: number } = {}, signal?: AbortSignal) =>
      asList<Signal>(await request<unknown>("GET", "/api/trading/signals", { query: q, signal }), "signals"),
    orders: async (q: OrderQuery, signal?: AbortSignal) =>
      normaliseOrderPage(await request<unknown>("GET", "/api/trading/orders", { query: { ...q }, signal }), q),
    order: (clientOrderId: string, signal?: AbortSignal) =>
      request<OrderDetail>("GET", `/api/trading/orders/${enc(clientOrderId)}`, { signal }),
    closeOrder: (clientOrderId: string, reason = "closed from the dashboard") =>
      request<CloseResult>("POST", `/api/trading/orders/${enc(clientOrderId)}/close`, { body: { reason } }),
    closePosition: (symbol: string, reason = "closed from the dashboard") =>
      request<CloseResult>("POST", `/api/trading/positions/${enc(symbol)}/close`, { body: { reason } }),
    engageKillSwitch: (reason: string, flatten = false) =>
      request<KillSwitchResult>("POST", "/api/trading/kill-switch", { body: { reason, flatten } }),
    releaseKillSwitch: (reason: string) =>
      request<KillSwitchResult>("DELETE", "/api/trading/kill-switch", { query: { reason } }),
  },

  ml: {
    status: (signal?: AbortSignal) => request<MlStatus>("GET", "/api/ml/status", { signal }),
    models: async (signal?: AbortSignal) =>
      asList<ModelSummary>(await request<unknown>("GET", "/api/ml/models", { query: { limit: 100 }, signal }), "models"),
    model: (version: string, signal?: AbortSignal) =>
      request<ModelDetail>("GET", `/api/ml/models/${enc(version)}`, { signal }),
    production: (signal?: AbortSignal) => request<MlProduction>("GET", "/api/ml/production", { signal }),
    reload: () => request<ReloadResult>("POST", "/api/ml/reload", { body: {} }),
    drift: async (signal?: AbortSignal, limit = 50) =>
      asList<DriftReport>(await request<unknown>("GET", "/api/ml/drift", { query: { limit }, signal }), "reports"),
    /** Severity points per symbol since `sinceMs`. */
    driftHistory: async (sinceMs: number, signal?: AbortSignal) =>
      driftBySymbol(
        await request<DriftHistory | DriftPoint[]>("GET", "/api/ml/drift/history", { query: { since_ms: sinceMs }, signal }),
      ),
    retraining: async (signal?: AbortSignal, limit = 20) =>
      asList<RetrainingRun>(await request<unknown>("GET", "/api/ml/retraining", { query: { limit }, signal }), "runs"),
  },

  detection: {
    status: (signal?: AbortSignal) => request<DetectionStatus>("GET", "/api/detection/status", { signal }),
    levels: (symbol: string, signal?: AbortSignal) =>
      request<Levels>("GET", `/api/detection/levels/${enc(symbol)}`, { signal }),
  },

  strategies: {
    overview: async (signal?: AbortSignal): Promise<StrategiesOverview> => {
      const body = await request<unknown>("GET", "/api/strategies", { signal });
      const obj = (body && typeof body === "object" && !Array.isArray(body) ? body : {}) as Partial<StrategiesOverview>;
      return { ...obj, strategies: asList(body, "strategies") };
    },
    enable: (name: string) => request<StrategyToggle>("POST", `/api/strategies/${enc(name)}/enable`, { body: {} }),
    disable: (name: string) => request<StrategyToggle>("POST", `/api/strategies/${enc(name)}/disable`, { body: {} }),
  },

  monitoring: {
    recovery: (signal?: AbortSignal) =>
      request<RecoveryStatus>("GET", "/api/monitoring/recovery/status", { signal }),
    triggerRecovery: () => request<ReconciliationSummary>("POST", "/api/monitoring/recovery/trigger", { body: {} }),
    breakers: async (signal?: AbortSignal) =>
      asBreakers(await request<unknown>("GET", "/api/monitoring/circuit-breakers", { signal })),
    resetBreaker: (name: string) =>
      request<{ previous_state: string; breaker: CircuitBreaker }>("POST", `/api/monitoring/circuit-breakers/${enc(name)}/reset`, { body: {} }),
    rateLimiters: async (signal?: AbortSignal) =>
      asList<RateLimiter>(await request<unknown>("GET", "/api/monitoring/rate-limiters", { signal }), "limiters"),
  },

  health: (signal?: AbortSignal) => request<Health>("GET", "/health", { signal, auth: false }),
  /** /ready answers 503 with the same body when not ready: that is data here, not an error. */
  ready: async (signal?: AbortSignal): Promise<Ready> => {
    try {
      return await request<Ready>("GET", "/ready", { signal, auth: false });
    } catch (err) {
      if (err instanceof ApiError && err.status === 503 && err.body && typeof err.body === "object") return err.body as Ready;
      throw err;
    }
  },
};

/** Breakers as a list, whether the route answers a list or a map name -> state. */
function asBreakers(body: unknown): CircuitBreaker[] {
  const list = asList<CircuitBreaker>(body, "breakers");
  if (list.length || Array.isArray(body)) return list;
  if (body && typeof body === "object") {
    return Object.entries(body as Record<string, unknown>).map(([name, v]) =>
      v && typeof v === "object" ? { name, ...(v as Omit<CircuitBreaker, "name">) } : { name, state: String(v) },
    );
  }
  return [];
}
