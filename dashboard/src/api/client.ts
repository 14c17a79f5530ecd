// The one place that talks HTTP to the daemon: tokens, the Authorization header, one refresh on 401,
// timeouts and the server's error text. Pages call the typed functions in ./endpoints.ts instead.
import type { Role, TokenPair } from "./types";

const STORAGE_KEY = "depthcharge.auth";
const TIMEOUT_MS = 15_000;

export interface StoredAuth {
  access: string;
  refresh: string;
  username: string;
  role: Role;
  /** When the access token stops working, by our clock (best effort; the server decides). */
  accessExpiresMs?: number;
}

/** An HTTP error with the server's own message (FastAPI's `detail`), or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, message: string, body?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

/** The text a person should read for an error of any kind. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

// ---- token store ----

function load(): StoredAuth | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<StoredAuth>;
    if (typeof parsed.access !== "string" || typeof parsed.refresh !== "string") return null;
    return {
      access: parsed.access,
      refresh: parsed.refresh,
      username: parsed.username ?? "",
      role: (parsed.role ?? "viewer") as Role,
      accessExpiresMs: parsed.accessExpiresMs,
    };
  } catch {
    return null;
  }
}

let current: StoredAuth | null = typeof localStorage === "undefined" ? null : load();
const listeners = new Set<(auth: StoredAuth | null) => void>();

export function getAuth(): StoredAuth | null {
  return current;
}

export function onAuthChange(cb: (auth: StoredAuth | null) => void): () => void {
  listeners.add(cb);
  return () => listeners.delete(cb);
}

function publish(next: StoredAuth | null): void {
  current = next;
  try {
    if (next) localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Private mode or a full quota: the session still works until the tab closes.
  }
  for (const cb of listeners) cb(next);
}

export function storeTokens(pair: TokenPair): StoredAuth {
  const auth: StoredAuth = {
    access: pair.access_token,
    refresh: pair.refresh_token,
    username: pair.username ?? current?.username ?? "",
    role: pair.role ?? current?.role ?? "viewer",
    accessExpiresMs: pair.expires_in ? Date.now() + pair.expires_in * 1000 : undefined,
  };
  publish(auth);
  return auth;
}

export function clearAuth(): void {
  publish(null);
}

// ---- requests ----

type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  /** false for the login and refresh calls, which must not send or refresh a token. */
  auth?: boolean;
  signal?: AbortSignal;
}

export function buildUrl(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    params.set(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** FastAPI sends {"detail": "text"} or {"detail": [{loc, msg}, ...]} for validation errors. */
export function detailText(body: unknown, fallback: string): string {
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    const detail = b.detail ?? b.message ?? b.error;
    if (typeof detail === "string" && detail) return detail;
    if (Array.isArray(detail)) {
      const parts = detail.map((d) => {
        if (d && typeof d === "object") {
          const item = d as { loc?: unknown[]; msg?: string };
          const where = Array.isArray(item.loc) ? item.loc.filter((x) => x !== "body").join(".") : "";
          return where ? `${where}: ${item.msg ?? ""}` : (item.msg ?? JSON.stringify(d));
        }
        return String(d);
      });
      if (parts.length) return parts.join("; ");
    }
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 300);
  return fallback;
}

async function send(method: string, url: string, opts: RequestOptions, token: string | null): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException("timeout", "TimeoutError")), TIMEOUT_MS);
  const onAbort = () => controller.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", onAbort);
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    return await fetch(url, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: controller.signal,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err; // the caller gave up: not an error to show
    if (controller.signal.aborted) throw new ApiError(0, `${method} ${url}: no answer within ${TIMEOUT_MS / 1000} s`);
    throw new ApiError(0, `cannot reach the daemon (${method} ${url}): ${errorMessage(err)}`);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

async function parse(res: Response): Promise<unknown> {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

// Concurrent 401s share one refresh, so a page firing six requests does not spend six refresh tokens.
let refreshing: Promise<boolean> | null = null;

export function refreshTokens(): Promise<boolean> {
  if (!refreshing) {
    refreshing = (async () => {
      const auth = current;
      if (!auth) return false;
      try {
        const res = await send("POST", "/api/auth/refresh", { body: { refresh_token: auth.refresh } }, null);
        if (!res.ok) return false;
        storeTokens((await parse(res)) as TokenPair);
        return true;
      } catch {
        return false;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const url = buildUrl(path, opts.query);
  const useAuth = opts.auth !== false;
  let res = await send(method, url, opts, useAuth ? (current?.access ?? null) : null);
  if (res.status === 401 && useAuth && current) {
    if (await refreshTokens()) {
      res = await send(method, url, opts, current?.access ?? null);
    }
    if (res.status === 401) {
      const body = await parse(res);
      clearAuth(); // the app's auth listener sends the person to the login page
      throw new ApiError(401, detailText(body, "your session has ended: sign in again"), body);
    }
  }
  const body = await parse(res);
  if (!res.ok) {
    throw new ApiError(res.status, detailText(body, `${method} ${path} failed: HTTP ${res.status}`), body);
  }
  return body as T;
}
