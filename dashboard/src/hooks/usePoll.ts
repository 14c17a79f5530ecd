// Load something and keep it fresh: one request at a time, aborted on unmount, paused while the tab is
// hidden, the last good data kept when a refresh fails (the error is shown beside it).
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, errorMessage } from "../api";

export interface Poll<T> {
  data: T | undefined;
  error: string | null;
  /** HTTP status of the last failure (0: network), for pages that treat 503 "not trading" specially. */
  status: number | null;
  loading: boolean; // true until the first answer (good or bad)
  reload: () => void;
  setData: (update: (prev: T | undefined) => T | undefined) => void;
}

export function usePoll<T>(fetcher: (signal: AbortSignal) => Promise<T>, intervalMs: number | null, deps: unknown[] = []): Poll<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<number | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;

  const reload = useCallback(() => setTick((t) => t + 1), []);
  const setData = useCallback((update: (prev: T | undefined) => T | undefined) => setDataState(update), []);

  // A change of inputs starts over: the old data belongs to other inputs.
  useEffect(() => {
    setDataState(undefined);
    setError(null);
    setStatus(null);
    setLoading(true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    let stopped = false;

    const run = async () => {
      if (stopped) return;
      if (typeof document !== "undefined" && document.hidden && intervalMs) {
        timer = setTimeout(run, intervalMs);
        return;
      }
      try {
        const result = await fetcherRef.current(controller.signal);
        if (stopped) return;
        setDataState(result);
        setError(null);
        setStatus(null);
      } catch (err) {
        if (stopped || controller.signal.aborted) return;
        setError(errorMessage(err));
        setStatus(err instanceof ApiError ? err.status : 0);
      } finally {
        if (!stopped) {
          setLoading(false);
          if (intervalMs) timer = setTimeout(run, intervalMs);
        }
      }
    };
    void run();
    return () => {
      stopped = true;
      controller.abort();
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tick, intervalMs, ...deps]);

  return { data, error, status, loading, reload, setData };
}
