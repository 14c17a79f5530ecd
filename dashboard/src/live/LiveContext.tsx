// The live socket for the whole app: one LiveClient while someone is signed in, its connection state,
// and hooks for pages to listen to topics. Fast topics (book, metrics) land in plain maps and are handed
// to React at most a few times a second, so a busy market does not re-render the page on every message.
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { LiveClient, defaultWsUrl, getAuth, refreshTokens, type ConnectionState, type Topic, type TopicHandler } from "../api";
import { useAuth } from "../auth/AuthContext";

const LiveContext = createContext<LiveClient | null>(null);

export function LiveProvider({ children }: { children: ReactNode }) {
  const { auth } = useAuth();
  const signedIn = !!auth;
  const [client] = useState(
    () => new LiveClient({ url: defaultWsUrl, token: () => getAuth()?.access ?? null, refresh: refreshTokens }),
  );
  useEffect(() => {
    if (!signedIn) return;
    client.start();
    return () => client.stop();
  }, [client, signedIn]);
  return <LiveContext.Provider value={client}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveClient {
  const client = useContext(LiveContext);
  if (!client) throw new Error("useLive outside LiveProvider");
  return client;
}

export function useConnectionState(): ConnectionState {
  const client = useLive();
  const [state, setState] = useState<ConnectionState>(client.connectionState);
  useEffect(() => {
    setState(client.connectionState);
    return client.onState(setState);
  }, [client]);
  return state;
}

/** Call `handler` for every message of `topic` while the component is mounted (latest handler wins). */
export function useTopic(topic: Topic, handler: TopicHandler): void {
  const client = useLive();
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => client.subscribe(topic, (data, msg) => ref.current(data, msg)), [client, topic]);
}

/** Run `cb` after the socket came back, to re-read what may have been missed while it was down. */
export function useOnReconnect(cb: () => void): void {
  const client = useLive();
  const ref = useRef(cb);
  ref.current = cb;
  useEffect(() => client.onReconnect(() => ref.current()), [client]);
}

/**
 * A map keyed by symbol fed from a topic, re-rendered at most every `flushMs`. `extract` turns one message
 * into zero or more [symbol, value] entries (a message may carry one symbol or a map of them).
 */
export function useLiveMap<T>(topic: Topic, extract: (data: unknown) => Array<[string, T]>, flushMs = 500): Record<string, T> {
  const [snapshot, setSnapshot] = useState<Record<string, T>>({});
  const pending = useRef<Record<string, T>>({});
  const dirty = useRef(false);
  useTopic(topic, (data) => {
    for (const [symbol, value] of extract(data)) pending.current[symbol] = value;
    dirty.current = true;
  });
  useEffect(() => {
    const timer = setInterval(() => {
      if (!dirty.current) return;
      dirty.current = false;
      setSnapshot({ ...pending.current });
    }, flushMs);
    return () => clearInterval(timer);
  }, [flushMs]);
  return snapshot;
}
